process SCI2CL_PREPARE {
    tag "${meta.id}"
    label 'process_low'

    conda "${moduleDir}/environment.yml"
    container "${ workflow.containerEngine in ['singularity', 'apptainer'] && !task.ext.singularity_pull_docker_container ?
        'docker://ghcr.io/sci2cl-nf/sci2cl:0.1.0-cpu' :
        'ghcr.io/sci2cl-nf/sci2cl:0.1.0-cpu' }"

    input:
    // arc: a Cell Ranger ARC `outs/` folder, a filtered 10x `.h5`, a MEX folder, an `.h5mu`,
    // or the file list that nf-core CELLRANGERARC_COUNT emits (`outs/**`). Every element is
    // staged into its own numbered folder so that equal basenames (barcodes.tsv.gz of the
    // filtered and raw MEX folders, ...) cannot collide; a list is then passed as that folder
    // and the CLI searches it recursively.
    tuple val(meta), path(arc, stageAs: 'arc_input/???/*')

    output:
    tuple val(meta), path("${prefix}.prepared.h5mu"), emit: h5mu
    path "versions.yml"                             , emit: versions, topic: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args  = task.ext.args ?: ''
    prefix    = task.ext.prefix ?: "${meta.id}"
    def input = arc instanceof List ? 'arc_input' : "${arc}"
    """
    export MPLCONFIGDIR="\$PWD/.mplconfig"
    export NUMBA_CACHE_DIR="\${NUMBA_CACHE_DIR:-\$PWD/.numba_cache}"
    export OMP_NUM_THREADS=${task.cpus}

    sci2cl prepare \\
        --input ${input} \\
        --output-prefix ${prefix} \\
        --sample ${meta.id} \\
        ${args}

    read -r sci2cl_version python_version torch_version cuda_version < <(python -c 'import platform, sci2cl, torch; print(sci2cl.__version__, platform.python_version(), torch.__version__, torch.version.cuda or "none")')
    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        sci2cl: "\${sci2cl_version}"
        python: "\${python_version}"
        torch: "\${torch_version}"
        cuda: "\${cuda_version}"
    END_VERSIONS
    """

    stub:
    def args  = task.ext.args ?: ''
    prefix    = task.ext.prefix ?: "${meta.id}"
    // Needs no Python: the versions fall back to 'stub' where the toolkit is not installed.
    """
    echo $args
    touch ${prefix}.prepared.h5mu

    read -r sci2cl_version python_version torch_version cuda_version < <(python -c 'import platform, sci2cl, torch; print(sci2cl.__version__, platform.python_version(), torch.__version__, torch.version.cuda or "none")' 2>/dev/null || echo 'stub stub stub stub')
    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        sci2cl: "\${sci2cl_version}"
        python: "\${python_version}"
        torch: "\${torch_version}"
        cuda: "\${cuda_version}"
    END_VERSIONS
    """
}
