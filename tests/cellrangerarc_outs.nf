/*
    Test harness (tests/test_pipeline.py): SCI2CL_PREPARE fed the way nf-core's
    CELLRANGERARC_COUNT feeds it, `tuple val(meta), path("${prefix}/outs/**")`, i.e. every
    file below outs/ as one flat list of task outputs. Two samples from one outs/ folder:
    `<sample>_all` gets the whole list, `<sample>_mex` only the filtered MEX files.

        nextflow run tests/cellrangerarc_outs.nf --outs <ARC outs/ folder> --sample pbmc
*/

include { SCI2CL_PREPARE } from '../modules/local/sci2cl/prepare/main'

// Stands in for CELLRANGERARC_COUNT: copies an ARC outs/ folder into its work directory and
// emits it as that module does
process CELLRANGERARC_COUNT_STANDIN {
    tag "${meta.id}"

    input:
    tuple val(meta), path(source, stageAs: 'source')

    output:
    tuple val(meta), path("${meta.id}/outs/**"), emit: outs

    script:
    """
    mkdir ${meta.id}
    cp -rL source ${meta.id}/outs
    """
}

workflow {
    CELLRANGERARC_COUNT_STANDIN(
        channel.of(
            [[id: "${params.sample}_all"], file(params.outs, checkIfExists: true)],
            [[id: "${params.sample}_mex"], file(params.outs, checkIfExists: true)]
        )
    )
    ch_arc = CELLRANGERARC_COUNT_STANDIN.out.outs.map { meta, files ->
        meta.id.endsWith('_mex')
            ? [meta, files.findAll { f -> f.parent.name == 'filtered_feature_bc_matrix' }]
            : [meta, files]
    }
    SCI2CL_PREPARE(ch_arc)
    SCI2CL_PREPARE.out.h5mu.view { meta, h5mu -> "prepared ${meta.id} ${h5mu}" }
}
