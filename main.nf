#!/usr/bin/env nextflow
/*
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
    sci2cl-nf
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
    Joint scRNA + scATAC (10x Multiome) cell embeddings with scI2CL.

    samplesheet.csv (sample,input) -> SCI2CL_PREPARE (per sample) -> SCI2CL_TRAIN -> MULTIQC
        -> <outdir>/{prepare,train,multiqc,pipeline_info}   (see docs/output.md)

    Runs on Nextflow 24.10.x and current releases (legacy and strict syntax parsers).
----------------------------------------------------------------------------------------
*/

include { SCI2CL                  } from './workflows/sci2cl'
include { PIPELINE_INITIALISATION } from './subworkflows/local/utils_sci2cl_pipeline'

workflow {

    //
    // Validate params and the samplesheet before anything runs
    //
    PIPELINE_INITIALISATION(
        params,
        "${projectDir}/nextflow_schema.json",
        "${projectDir}/assets/schema_input.json",
        params.input_base_dir ?: "${workflow.launchDir}"
    )

    //
    // PREPARE -> TRAIN
    //
    SCI2CL(
        PIPELINE_INITIALISATION.out.samplesheet,
        params.integration,
        params.joint_id
    )

    workflow.onComplete = {
        if (workflow.success) {
            log.info "sci2cl-nf: completed; results in ${params.outdir} (layout: docs/output.md)"
        }
        else {
            log.error "sci2cl-nf: failed; see ${params.outdir}/pipeline_info and .nextflow.log"
        }
    }
}
