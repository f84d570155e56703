process SCI2CL_TRAIN {
    tag "${meta.id}"
    label 'process_medium'
    label 'process_gpu'

    // The pipeline (never this module) sets `accelerator` for GPU runs; the module reads it to
    // pick the image (CUDA or CPU) and the `--device` of the CLI. `ext.cuda = '12'` picks the
    // CUDA 12 image (drivers >= 525) instead of the CUDA 13 one (drivers >= 580).
    conda "${moduleDir}/environment.yml"
    container "${ !task.accelerator ?
        'ghcr.io/sci2cl-nf/sci2cl:0.1.0-cpu' :
        task.ext.cuda?.toString() == '12' ?
        'ghcr.io/sci2cl-nf/sci2cl:0.1.0-cuda12' :
        'ghcr.io/sci2cl-nf/sci2cl:0.1.0-cuda' }"

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
    tuple val(meta), path("multiqc/*")                   , emit: multiqc
    tuple val("${task.process}"), val('sci2cl'), eval('$SCI2CL_PYTHON -c "import sci2cl; print(sci2cl.__version__)"'), emit: versions_sci2cl, topic: versions
    tuple val("${task.process}"), val('python'), eval('$SCI2CL_PYTHON -c "import platform; print(platform.python_version())"'), emit: versions_python, topic: versions
    tuple val("${task.process}"), val('torch'), eval('$SCI2CL_PYTHON -c "import torch; print(torch.__version__)"'), emit: versions_torch, topic: versions
    tuple val("${task.process}"), val('cuda'), eval('$SCI2CL_PYTHON -c "import torch; print(torch.version.cuda if torch.cuda.is_available() else \'none\')"'), emit: versions_cuda, topic: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args   = task.ext.args ?: ''
    prefix     = task.ext.prefix ?: "${meta.id}"
    def files  = prepared instanceof List ? prepared : [prepared]
    def inputs = files.collect { f -> "--input ${f}" }.join(' ')
    def device = args.contains('--device') ? '' : "--device ${task.accelerator ? 'cuda' : 'cpu'}"
    if (workflow.profile.tokenize(',').intersect(['conda', 'mamba'])) {
        error("SCI2CL_TRAIN: -profile conda/mamba cannot work until sci2cl is released on PyPI (environment.yml installs it from there); use a container profile (docker, singularity, apptainer, podman) or see docs/usage.md")
    }
    if (files.any { f -> "${f}" == "${prefix}.h5mu" }) {
        error "SCI2CL_TRAIN: input and output names are the same (${prefix}.h5mu); set a different ext.prefix"
    }
    // A retry resumes from the checkpoint that the failed attempt left in its work directory
    // (task.previousTrace.workdir; readable where work directories are a shared file system,
    // or with Fusion on AWS / Google Batch: docs/usage.md#retries-resume-from-a-checkpoint).
    def previous   = task.attempt > 1 && task.previousTrace ? "${task.previousTrace.workdir}".replaceFirst(/^(s3|gs|az):\/\//, '/fusion/$1/') : ''
    """
    export MPLCONFIGDIR="\$PWD/.mplconfig"
    export NUMBA_CACHE_DIR="\${NUMBA_CACHE_DIR:-\$PWD/.numba_cache}"
    export OMP_NUM_THREADS=${task.cpus}
    # the Python that runs sci2cl (the #! line of its entry point), for the versions
    SCI2CL_PYTHON=\$(sed -n '1s/^#![[:space:]]*//p' "\$(command -v sci2cl)" 2>/dev/null || true)
    [[ \$SCI2CL_PYTHON == *python* ]] || SCI2CL_PYTHON=python3

    if [[ -n "${previous}" && -s "${previous}/${prefix}.checkpoint.pt" ]]; then
        cp "${previous}/${prefix}.checkpoint.pt" ${prefix}.checkpoint.pt
        echo "sci2cl-nf: attempt ${task.attempt}: resuming from the checkpoint of attempt ${task.attempt - 1} (${previous}/${prefix}.checkpoint.pt)" >&2
    elif [[ ${task.attempt} -gt 1 ]]; then
        echo "sci2cl-nf: attempt ${task.attempt}: no checkpoint from attempt ${task.attempt - 1}${previous ? ' in ' + previous : ''}; training from the start" >&2
    fi

    sci2cl train \\
        ${inputs} \\
        --output-prefix ${prefix} \\
        ${device} \\
        --threads ${task.cpus} \\
        --checkpoint ${prefix}.checkpoint.pt --resume \\
        ${args}

    # MultiQC custom content: embedding summary, training curves, UMAP
    shopt -s nullglob
    sci2cl multiqc ${prefix}.h5mu ${prefix}.history.csv ${prefix}.*umap*.png --outdir multiqc
    """

    stub:
    def args   = task.ext.args ?: ''
    prefix     = task.ext.prefix ?: "${meta.id}"
    """
    SCI2CL_PYTHON=\$(sed -n '1s/^#![[:space:]]*//p' "\$(command -v sci2cl)" 2>/dev/null || true)
    [[ \$SCI2CL_PYTHON == *python* ]] || SCI2CL_PYTHON=python3

    echo $args
    touch ${prefix}.embeddings.parquet
    touch ${prefix}.h5mu
    touch ${prefix}.model.pt
    touch ${prefix}.history.csv
    touch ${prefix}.umap.png
    touch ${prefix}.losses.png
    mkdir multiqc
    touch multiqc/sci2cl_embedding_mqc.json
    """
}
