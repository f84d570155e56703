process MULTIQC {
    label 'process_single'

    // MultiQC is installed in the sci2cl image (containers/locks/base.txt)
    conda "${moduleDir}/environment.yml"
    container 'ghcr.io/sci2cl-nf/sci2cl:0.1.0-cpu'

    input:
    path multiqc_files, stageAs: '?/*'
    path multiqc_config

    output:
    path "multiqc_report.html", emit: report
    path "multiqc_report_data", emit: data
    // On the `versions` topic for host pipelines' records. This pipeline builds the report's
    // versions from the mixed emits (workflows/sci2cl.nf), never from channel.topic('versions'):
    // feeding MULTIQC from that topic would wait on MULTIQC itself.
    tuple val("${task.process}"), val('multiqc'), eval('multiqc --version | sed "s/.* //"'), emit: versions_multiqc, topic: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args   = task.ext.args ?: ''
    def config = multiqc_config ? "--config ${multiqc_config}" : ''
    """
    export MPLCONFIGDIR="\$PWD/.mplconfig"
    multiqc \\
        --force \\
        --filename multiqc_report.html \\
        ${config} \\
        ${args} \\
        .
    """

    stub:
    """
    mkdir multiqc_report_data
    touch multiqc_report_data/.stub
    touch multiqc_report.html
    """
}
