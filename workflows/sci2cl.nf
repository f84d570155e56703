/*
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
    sci2cl-nf: PREPARE (per sample) -> TRAIN (per sample, or jointly)
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
*/

include { SCI2CL_PREPARE } from '../modules/local/sci2cl/prepare/main'
include { SCI2CL_TRAIN   } from '../modules/local/sci2cl/train/main'
include { MULTIQC        } from '../modules/local/multiqc/main'
include { softwareVersionsToYAML } from '../subworkflows/local/utils_sci2cl_pipeline'

workflow SCI2CL {

    take:
    ch_samplesheet   // channel: [ val(meta), path(input) ]  one item per sample
    integration      // string:  'per_sample' | 'joint'
    joint_id         // string:  meta.id (and file prefix) of the joint model

    main:
    // [ process, tool, version ] from every task. The modules also put them on the `versions`
    // topic, but topic channels are a preview feature on Nextflow 24.10, so they are mixed here.
    ch_versions = channel.empty()

    //
    // PREPARE: QC, feature selection; one prepared MuData per sample
    //
    SCI2CL_PREPARE(ch_samplesheet)
    ch_versions = ch_versions.mix(
        SCI2CL_PREPARE.out.versions_sci2cl,
        SCI2CL_PREPARE.out.versions_python
    )

    //
    // TRAIN input: [ meta, [ prepared.h5mu, ... ] ]
    //
    if (integration == 'joint') {
        // Hook for multi-sample integration: every prepared sample goes into ONE training task
        // (the module passes each file as a repeated --input). Batch keys / sample covariates
        // are the business of the multi-sample issue; extend the meta map here.
        ch_train_input = SCI2CL_PREPARE.out.h5mu
            .toSortedList { a, b -> a[0].id <=> b[0].id }
            .filter { rows -> rows.size() > 0 }
            .map { rows ->
                def meta = [id: joint_id, samples: rows.collect { row -> row[0].id }]
                [meta, rows.collect { row -> row[1] }]
            }
    }
    else {
        // per_sample: one model per sample
        ch_train_input = SCI2CL_PREPARE.out.h5mu
    }

    SCI2CL_TRAIN(ch_train_input)
    ch_versions = ch_versions.mix(
        SCI2CL_TRAIN.out.versions_sci2cl,
        SCI2CL_TRAIN.out.versions_python,
        SCI2CL_TRAIN.out.versions_torch,
        SCI2CL_TRAIN.out.versions_cuda
    )

    //
    // pipeline_info/sci2cl_software_mqc_versions.yml, then the MultiQC report: sci2cl's custom
    // content of every task (QC, training curves, embedding, UMAP) and the versions
    //
    ch_versions_yml = softwareVersionsToYAML(
        ch_versions,
        (workflow.manifest.name ?: 'sci2cl-nf').tokenize('/')[-1],
        workflow.manifest.version ?: 'dev',
        "${nextflow.version}"
    )
        .collectFile(
            storeDir: "${params.outdir}/pipeline_info",
            name: 'sci2cl_software_mqc_versions.yml',
            sort: true,
            newLine: true
        )
    ch_multiqc_files = SCI2CL_PREPARE.out.multiqc
        .mix(SCI2CL_TRAIN.out.multiqc)
        .flatMap { row -> row[1] instanceof List ? row[1] : [row[1]] }
        .mix(ch_versions_yml)
    MULTIQC(
        ch_multiqc_files.toSortedList { a, b -> a.name <=> b.name },
        channel.value(file("${projectDir}/assets/multiqc_config.yml", checkIfExists: true))
    )

    emit:
    prepared   = SCI2CL_PREPARE.out.h5mu      // channel: [ val(meta), path(*.prepared.h5mu) ]
    embeddings = SCI2CL_TRAIN.out.embeddings  // channel: [ val(meta), path(*.embeddings.parquet) ]
    h5mu       = SCI2CL_TRAIN.out.h5mu        // channel: [ val(meta), path(*.h5mu) ]
    model      = SCI2CL_TRAIN.out.model       // channel: [ val(meta), path(*.model.pt) ]
    history    = SCI2CL_TRAIN.out.history     // channel: [ val(meta), path(*.history.csv) ]
    figures    = SCI2CL_TRAIN.out.figures     // channel: [ val(meta), [ path(*.png) ] ]
    multiqc    = MULTIQC.out.report           // channel: [ path(multiqc_report.html) ]
    versions   = ch_versions                  // channel: [ val(process), val(tool), val(version) ]
}
