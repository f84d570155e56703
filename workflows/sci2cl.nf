/*
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
    sci2cl-nf: PREPARE (per sample) -> TRAIN (per sample, or jointly)
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
*/

include { SCI2CL_PREPARE } from '../modules/local/sci2cl/prepare/main'
include { SCI2CL_TRAIN   } from '../modules/local/sci2cl/train/main'

workflow SCI2CL {

    take:
    ch_samplesheet   // channel: [ val(meta), path(input) ]  one item per sample
    integration      // string:  'per_sample' | 'joint'
    joint_id         // string:  meta.id (and file prefix) of the joint model

    main:
    ch_versions = channel.empty()

    //
    // PREPARE: QC, feature selection; one prepared MuData per sample
    //
    SCI2CL_PREPARE(ch_samplesheet)
    ch_versions = ch_versions.mix(SCI2CL_PREPARE.out.versions)

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
    ch_versions = ch_versions.mix(SCI2CL_TRAIN.out.versions)

    emit:
    prepared   = SCI2CL_PREPARE.out.h5mu      // channel: [ val(meta), path(*.prepared.h5mu) ]
    embeddings = SCI2CL_TRAIN.out.embeddings  // channel: [ val(meta), path(*.embeddings.parquet) ]
    h5mu       = SCI2CL_TRAIN.out.h5mu        // channel: [ val(meta), path(*.h5mu) ]
    model      = SCI2CL_TRAIN.out.model       // channel: [ val(meta), path(*.model.pt) ]
    history    = SCI2CL_TRAIN.out.history     // channel: [ val(meta), path(*.history.csv) ]
    figures    = SCI2CL_TRAIN.out.figures     // channel: [ val(meta), [ path(*.png) ] ]
    versions   = ch_versions                  // channel: [ path(versions.yml) ]
}
