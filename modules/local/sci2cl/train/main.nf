process SCI2CL_TRAIN {
    tag "${meta.id}"
    label 'process_medium'
    label 'process_gpu'

    // The pipeline (never this module) sets `accelerator` for GPU runs; the module reads it to
    // pick the CUDA or the CPU image and the `--device` of the CLI.
    conda "${moduleDir}/environment.yml"
    container "${ (workflow.containerEngine in ['singularity', 'apptainer'] && !task.ext.singularity_pull_docker_container ? 'docker://' : '') +
        (task.accelerator ? 'ghcr.io/sci2cl-nf/sci2cl:0.1.0-cuda' : 'ghcr.io/sci2cl-nf/sci2cl:0.1.0-cpu') }"

    input:
    // prepared: one or more `*.prepared.h5mu` from SCI2CL_PREPARE; several files are trained
    // jointly (each is passed as a repeated --input).
    tuple val(meta), path(prepared)

    output:
    tuple val(meta), path("${prefix}.embeddings.parquet"), emit: embeddings
    tuple val(meta), path("${prefix}.h5mu")              , emit: h5mu
    tuple val(meta), path("${prefix}.model.pt")          , emit: model
    tuple val(meta), path("${prefix}.history.csv")       , emit: history
    tuple val(meta), path("${prefix}.*.png")             , emit: figures, optional: true
    path "versions.yml"                                  , emit: versions, topic: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args   = task.ext.args ?: ''
    prefix     = task.ext.prefix ?: "${meta.id}"
    def files  = prepared instanceof List ? prepared : [prepared]
    def inputs = files.collect { f -> "--input ${f}" }.join(' ')
    def device = args.contains('--device') ? '' : "--device ${task.accelerator ? 'cuda' : 'cpu'}"
    if (files.any { f -> "${f}" == "${prefix}.h5mu" }) {
        error "SCI2CL_TRAIN: input and output names are the same (${prefix}.h5mu); set a different ext.prefix"
    }
    """
    export MPLCONFIGDIR="\$PWD/.mplconfig"
    export NUMBA_CACHE_DIR="\${NUMBA_CACHE_DIR:-\$PWD/.numba_cache}"
    export OMP_NUM_THREADS=${task.cpus}
    export CUBLAS_WORKSPACE_CONFIG=:4096:8

    sci2cl train \\
        ${inputs} \\
        --output-prefix ${prefix} \\
        ${device} \\
        --threads ${task.cpus} \\
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
    def args   = task.ext.args ?: ''
    prefix     = task.ext.prefix ?: "${meta.id}"
    // Needs no Python: the versions fall back to 'stub' where the toolkit is not installed.
    """
    echo $args
    touch ${prefix}.embeddings.parquet
    touch ${prefix}.h5mu
    touch ${prefix}.model.pt
    touch ${prefix}.history.csv
    touch ${prefix}.umap.png
    touch ${prefix}.losses.png

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
