/*
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
    sci2cl-nf: pipeline utilities
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
    Parameter and samplesheet validation done in plain Nextflow/Groovy (the pipeline must run
    offline, so it does not use the nf-schema plugin), and the software-versions summary.

    Written for both the legacy DSL2 parser (Nextflow 24.10) and the strict parser
    (default from Nextflow 26.04): no imports, no classes, no for/while loops.
----------------------------------------------------------------------------------------
*/

/*
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
    SUBWORKFLOW: PIPELINE_INITIALISATION
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
*/

workflow PIPELINE_INITIALISATION {

    take:
    pipeline_params   // map:    params
    schema_params     // string: path of nextflow_schema.json
    schema_input      // string: path of assets/schema_input.json
    input_base_dir    // string: directory that relative samplesheet paths are resolved against

    main:
    if (pipeline_params.validate_params.toString() != 'false') {
        validatePipelineParams(pipeline_params, schema_params)
    }

    def rows = readSamplesheet(pipeline_params.input, schema_input, input_base_dir)
    log.info "sci2cl-nf: ${rows.size()} sample(s) in ${pipeline_params.input}: ${rows.collect { row -> row[0].id }.join(', ')}"
    ch_samplesheet = channel.fromList(rows)

    emit:
    samplesheet = ch_samplesheet   // channel: [ val(meta), path(input) ]
}

/*
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
    PARAMETER VALIDATION (against nextflow_schema.json)
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
*/

//
// Check types, enums, patterns and required params; warn about unknown params.
// Stops the run with one message listing every problem.
//
def validatePipelineParams(pipeline_params, schema_path) {
    def schema = new groovy.json.JsonSlurper().parseText(file(schema_path).text)
    def definitions = [:]
    def required = []
    (schema['$defs'] ?: [:]).each { _group_name, group ->
        definitions.putAll(group.properties ?: [:])
        required.addAll(group.required ?: [])
    }
    def errors = []
    required.each { name ->
        def value = pipeline_params[name]
        if (value == null || value.toString().trim() == '' || value instanceof Boolean) {
            errors << "--${name} is required (${definitions[name]?.description ?: ''})"
        }
    }
    definitions.each { name, spec ->
        def value = pipeline_params[name]
        if (value == null) {
            return
        }
        def text = value.toString()
        def types = spec.type instanceof List ? spec.type : [spec.type]
        def ok = types.any { type -> paramHasType(value, type) }
        if (!ok) {
            errors << "--${name} '${text}' is not of type ${types.join(' or ')}"
            return
        }
        if (spec['enum'] && !(spec['enum'].collect { e -> e.toString() }.contains(text))) {
            errors << "--${name} '${text}' is not one of: ${spec['enum'].join(', ')}"
        }
        if (spec.pattern && (value instanceof CharSequence) && !(text ==~ spec.pattern)) {
            errors << "--${name} '${text}' does not match ${spec.pattern}"
        }
        if (spec.minimum != null && types.any { type -> type in ['integer', 'number'] } && paramAsNumber(value) < spec.minimum) {
            errors << "--${name} ${text} must be >= ${spec.minimum}"
        }
    }
    def known = definitions.keySet()
    def unknown = pipeline_params.keySet().findAll { name ->
        !(name in known) && !(paramSnakeCase(name) in known)
    }
    if (unknown) {
        log.warn "sci2cl-nf: unknown parameter(s) ignored: ${unknown.collect { name -> '--' + name }.join(', ')} (see nextflow_schema.json)"
    }
    if (errors) {
        error("sci2cl-nf: invalid parameters:\n  - " + errors.join('\n  - '))
    }
}

def paramHasType(value, type) {
    def text = value.toString()
    if (type == 'string') {
        return !(value instanceof Boolean)
    }
    if (type == 'integer') {
        return (value instanceof Integer) || (value instanceof Long) || (text ==~ /-?\d+/)
    }
    if (type == 'number') {
        return (value instanceof Number) || (text ==~ /-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?/)
    }
    if (type == 'boolean') {
        return (value instanceof Boolean) || (text in ['true', 'false'])
    }
    if (type == 'null') {
        return value == null
    }
    return true
}

def paramAsNumber(value) {
    return (value instanceof Number) ? value : new BigDecimal(value.toString())
}

def paramSnakeCase(name) {
    return name.replaceAll(/([A-Z])/) { match -> '_' + match[1].toLowerCase() }.replace('-', '_')
}

/*
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
    SAMPLESHEET (against assets/schema_input.json)
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
*/

//
// Read a CSV (or TSV) samplesheet, validate it against the JSON schema and return a list of
// [ meta, path ]. Supported schema keywords: required, type string, pattern, maxLength,
// errorMessage, format (path | file-path | directory-path) + exists, meta, uniqueEntries,
// minItems. Relative paths are resolved against `base_dir`; URLs (s3://, gs://, https://, ...)
// are used as they are. Every problem is reported with its line and column, then the run stops
// before any task starts.
//
def readSamplesheet(samplesheet, schema_path, base_dir) {
    if (!samplesheet) {
        error("sci2cl-nf: --input is required: a samplesheet CSV with columns 'sample' and 'input'")
    }
    def sheet = file(samplesheet.toString())
    if (!sheet.exists() || sheet.isDirectory()) {
        error("sci2cl-nf: samplesheet '${samplesheet}' does not exist or is not a file")
    }
    def schema = new groovy.json.JsonSlurper().parseText(file(schema_path).text)
    def properties = schema.items.properties
    def required = schema.items.required ?: []
    def separator = sheet.name.toLowerCase().endsWith('.tsv') ? '\t' : ','
    def where = "Samplesheet '${samplesheet}'"

    def lines = sheet.readLines()
    def numbered = []
    lines.eachWithIndex { line, index ->
        def text = index == 0 ? line.replaceFirst(/^\uFEFF/, '') : line
        if (text.trim()) {
            numbered << [index + 1, text.replaceAll(/\r$/, '')]
        }
    }
    if (!numbered) {
        error("sci2cl-nf: ${where} is empty; expected a header line 'sample,input' and one row per sample")
    }
    def header = splitSamplesheetLine(numbered[0][1], separator).collect { column -> column.trim() }
    def header_errors = []
    def duplicated_columns = header.findAll { column -> header.count(column) > 1 }.unique()
    if (duplicated_columns) {
        header_errors << "${where}, line ${numbered[0][0]} (header): duplicated column(s) ${duplicated_columns.collect { c -> "'${c}'" }.join(', ')}"
    }
    def missing_columns = required.findAll { column -> !(column in header) }
    if (missing_columns) {
        header_errors << "${where}, line ${numbered[0][0]} (header): missing required column(s) ${missing_columns.collect { c -> "'${c}'" }.join(', ')}; found ${header.collect { c -> "'${c}'" }.join(', ')}; expected ${properties.keySet().collect { c -> "'${c}'" }.join(', ')}"
    }
    if (header_errors) {
        error("sci2cl-nf: invalid samplesheet:\n  - " + header_errors.join('\n  - '))
    }
    def unknown_columns = header.findAll { column -> column && !(column in properties.keySet()) }
    if (unknown_columns) {
        log.warn "sci2cl-nf: ${where}: ignoring unknown column(s) ${unknown_columns.join(', ')}"
    }

    def errors = []
    def rows = []
    def records = []
    def data_lines = numbered.drop(1)
    if (data_lines.size() < (schema.minItems ?: 0)) {
        errors << "${where}: no samples; expected at least ${schema.minItems} row(s) after the header"
    }
    data_lines.each { entry ->
        def line_no = entry[0]
        def fields = splitSamplesheetLine(entry[1], separator)
        if (fields.size() != header.size()) {
            errors << "${where}, line ${line_no}: has ${fields.size()} field(s) but the header has ${header.size()} (check for missing or extra '${separator == ',' ? ',' : '\\t'}')"
            return
        }
        def record = [:]
        header.eachWithIndex { column, i -> record[column] = fields[i].trim() }
        records << [line_no, record]
        def meta = [:]
        def paths = [:]
        def row_ok = true
        properties.each { column, spec ->
            def value = record[column]
            def label = "${where}, line ${line_no}, column '${column}'"
            if (value == null || value == '') {
                if (column in required) {
                    errors << "${label}: value is empty${spec.errorMessage ? ' (' + spec.errorMessage + ')' : ''}"
                    row_ok = false
                }
                return
            }
            if (spec.maxLength && value.length() > spec.maxLength) {
                errors << "${label}: '${value}' is longer than ${spec.maxLength} characters"
                row_ok = false
                return
            }
            if (spec.pattern && !(value ==~ spec.pattern)) {
                errors << "${label}: '${value}' ${spec.errorMessage ?: 'does not match ' + spec.pattern}"
                row_ok = false
                return
            }
            if (spec.format in ['path', 'file-path', 'directory-path']) {
                def path = resolveSamplesheetPath(value, base_dir)
                if (spec.exists && !path.exists()) {
                    errors << "${label}: path '${value}' does not exist (resolved to ${path.toUriString()})"
                    row_ok = false
                    return
                }
                if (spec.exists && spec.format == 'file-path' && path.isDirectory()) {
                    errors << "${label}: '${value}' is a directory, expected a file"
                    row_ok = false
                    return
                }
                if (spec.exists && spec.format == 'directory-path' && !path.isDirectory()) {
                    errors << "${label}: '${value}' is not a directory"
                    row_ok = false
                    return
                }
                paths[column] = path
            }
            if (spec.meta) {
                spec.meta.each { key -> meta[key] = value }
            }
        }
        if (row_ok) {
            rows << [line_no, meta, paths, record]
        }
    }
    (schema.uniqueEntries ?: []).each { column ->
        def seen = [:]
        records.each { entry ->
            def value = entry[1][column]
            if (!value) {
                return
            }
            if (seen.containsKey(value)) {
                errors << "${where}, line ${entry[0]}, column '${column}': '${value}' is duplicated (first used on line ${seen[value]}); ${column} values must be unique"
            }
            else {
                seen[value] = entry[0]
            }
        }
    }
    if (errors) {
        error("sci2cl-nf: invalid samplesheet (${errors.size()} problem(s)):\n  - " + errors.join('\n  - '))
    }
    return rows.collect { row -> [row[1], row[2]['input']] }
}

//
// Split one CSV/TSV line; double-quoted fields may contain the separator and "" escapes.
//
def splitSamplesheetLine(line, separator) {
    def fields = []
    def current = new StringBuilder()
    def state = [quoted: false, previous_quote: false]
    line.toCharArray().each { ch ->
        def c = ch.toString()
        if (state.quoted) {
            if (c == '"') {
                state.quoted = false
                state.previous_quote = true
            }
            else {
                current.append(c)
            }
        }
        else if (c == '"') {
            if (state.previous_quote) {
                current.append('"')
            }
            state.quoted = true
            state.previous_quote = false
        }
        else if (c == separator) {
            fields << current.toString()
            current = new StringBuilder()
            state.previous_quote = false
        }
        else {
            current.append(c)
            state.previous_quote = false
        }
    }
    fields << current.toString()
    return fields
}

//
// URLs and absolute paths as they are; relative paths against base_dir.
//
def resolveSamplesheetPath(value, base_dir) {
    if (value ==~ /^[A-Za-z][A-Za-z0-9+.-]*:\/\/.*/ || value.startsWith('/')) {
        return file(value)
    }
    def base = base_dir.toString().replaceAll(/\/+$/, '')
    return file("${base}/${value}")
}

/*
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
    SOFTWARE VERSIONS
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
*/

//
// Merge the [ process, tool, version ] tuples of all tasks into one YAML text:
//   <PROCESS (last name)>: { tool: version, ... }  plus  Workflow: { sci2cl-nf, Nextflow }
// Works on Nextflow 24.10 (no topic channel needed): the workflow mixes the modules'
// `versions_*` emits into one channel. On Nextflow >= 25.04 the same tuples are also on the
// `versions` topic for pipelines that read channel.topic('versions').
//
def softwareVersionsToYAML(ch_versions, pipeline_name, pipeline_version, nextflow_version) {
    return ch_versions
        .unique()
        .toList()
        .map { rows ->
            def merged = new TreeMap()
            rows.each { row ->
                def short_name = row[0].toString().tokenize(':')[-1]
                def tools = merged.containsKey(short_name) ? merged[short_name] : new TreeMap()
                tools[row[1].toString()] = row[2] == null ? '' : row[2].toString()
                merged[short_name] = tools
            }
            def workflow_entry = new TreeMap()
            workflow_entry[pipeline_name.toString()] = pipeline_version.toString()
            workflow_entry['Nextflow'] = nextflow_version.toString()
            merged['Workflow'] = workflow_entry
            def options = new org.yaml.snakeyaml.DumperOptions()
            options.setDefaultFlowStyle(org.yaml.snakeyaml.DumperOptions.FlowStyle.BLOCK)
            new org.yaml.snakeyaml.Yaml(options).dump(merged)
        }
}
