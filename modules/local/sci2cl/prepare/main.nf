process SCI2CL_PREPARE {
    tag "${meta.id}"
    label 'process_low'

    conda "${moduleDir}/environment.yml"
    container 'ghcr.io/sci2cl-nf/sci2cl:0.1.0-cpu'

    input:
    // arc: a Cell Ranger ARC `outs/` folder, a filtered 10x `.h5`, a MEX folder, an `.h5mu`,
    // or a list of files such as the `outs/**` list that nf-core CELLRANGERARC_COUNT emits.
    // Each element is staged into its own numbered folder, so that equal basenames (the
    // barcodes.tsv.gz of the filtered and raw MEX folders, ...) cannot collide; the script
    // then rebuilds the list's own layout (relative to the folder the files share) in `arc/`.
    tuple val(meta), path(arc, stageAs: 'arc_input/???/*')

    output:
    tuple val(meta), path("${prefix}.prepared.h5mu"), emit: h5mu
    tuple val(meta), path("multiqc/*")              , emit: multiqc
    tuple val("${task.process}"), val('sci2cl'), eval('$SCI2CL_PYTHON -c "import sci2cl; print(sci2cl.__version__)"'), emit: versions_sci2cl, topic: versions
    tuple val("${task.process}"), val('python'), eval('$SCI2CL_PYTHON -c "import platform; print(platform.python_version())"'), emit: versions_python, topic: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args   = task.ext.args ?: ''
    prefix     = task.ext.prefix ?: "${meta.id}"
    if (workflow.profile.tokenize(',').intersect(['conda', 'mamba'])) {
        error("SCI2CL_PREPARE: -profile conda/mamba cannot work until sci2cl is released on PyPI (environment.yml installs it from there); use a container profile (docker, singularity, apptainer, podman) or see docs/usage.md")
    }
    def files  = arc instanceof List ? arc : [arc]
    // where each staged file came from (a staged input's real path is its source)
    def parts  = files.collect { f -> f.toRealPath().toString().tokenize('/') }
    def common = parts.collect { p -> p.init() }.inject { shared, p ->
        [shared, p].transpose().takeWhile { pair -> pair[0] == pair[1] }.collect { pair -> pair[0] }
    }
    def layout = [files, parts].transpose().collect { f, p ->
        def relative = p.drop(common.size())
        "mkdir -p 'arc/${relative.init().join('/')}' && ln -s '${'../' * relative.size()}${f}' 'arc/${relative.join('/')}'"
    }
    def input  = arc instanceof List ? 'arc' : "${arc}"
    """
    export MPLCONFIGDIR="\$PWD/.mplconfig"
    export NUMBA_CACHE_DIR="\${NUMBA_CACHE_DIR:-\$PWD/.numba_cache}"
    export OMP_NUM_THREADS=${task.cpus}
    # the Python that runs sci2cl (the #! line of its entry point), for the versions
    SCI2CL_PYTHON=\$(sed -n '1s/^#![[:space:]]*//p' "\$(command -v sci2cl)" 2>/dev/null || true)
    [[ \$SCI2CL_PYTHON == *python* ]] || SCI2CL_PYTHON=python3

    ${arc instanceof List ? layout.join('\n    ') : ''}

    sci2cl prepare \\
        --input ${input} \\
        --output-prefix ${prefix} \\
        --sample ${meta.id} \\
        ${args}

    # MultiQC custom content: the sample's cells and features kept / removed
    sci2cl multiqc ${prefix}.prepared.h5mu --outdir multiqc
    """

    stub:
    def args  = task.ext.args ?: ''
    prefix    = task.ext.prefix ?: "${meta.id}"
    """
    SCI2CL_PYTHON=\$(sed -n '1s/^#![[:space:]]*//p' "\$(command -v sci2cl)" 2>/dev/null || true)
    [[ \$SCI2CL_PYTHON == *python* ]] || SCI2CL_PYTHON=python3

    echo $args
    touch ${prefix}.prepared.h5mu
    mkdir multiqc
    touch multiqc/sci2cl_prepare_mqc.json
    """
}
