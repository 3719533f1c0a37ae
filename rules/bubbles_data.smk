# Spitzer bubbles, data side: mosaics (mock / download / local, and any named 8 µm + 24 µm
# pair), the catalogue, aligned and masked fields, negative windows and their k-means
# groups, validation/test windows. Paths (BUBBLE_PATHS), settings and input functions:
# rules/bubbles_common.smk.
#
# For the model side (rules/bubbles_model.smk):
#   BUBBLE_SPLITS[split]      -> field codes of train / validation / test
#   SURVEY_FIELDS             -> field codes of the whole-plane survey (bubbles.survey)
#   BUBBLE_PATHS.aligned      -> an aligned field (both bands, 8 µm grid)
#   BUBBLE_PATHS.catalog      -> the bubble catalogue (what training reads)
#   BUBBLE_TRUTH              -> what the test windows and detection figures show: the mock's
#                                truth (BUBBLE_PATHS.truth), else BUBBLE_PATHS.catalog
#   BUBBLE_TRAIN_NEGATIVES    -> the negatives HDF5 files of the training fields
#   BUBBLE_PATHS.negative_groups, BUBBLE_PATHS.windows ({bubble_split}: validation / test)


include: "bubbles_common.smk"


rule simulate_spitzer_field:
    input:
        unpack(simulate_positions),
    output:
        i4=BUBBLE_PATHS.mock_i4,
        m1=BUBBLE_PATHS.mock_m1,
        truth=BUBBLE_PATHS.mock_truth,
        catalog=BUBBLE_PATHS.mock_catalog,
    log:
        "logs/simulate_spitzer_field/{field}.log",
    benchmark:
        "benchmarks/rules/simulate_spitzer_field/{field}.tsv"
    wildcard_constraints:
        field=GLIMPSE_FIELD,
    priority: PRIORITY.bubble_training
    conda:
        ENV_SKY
    threads: 1
    resources:
        mem_mb=simulate_mem_mb,
        runtime=15,
    params:
        simulate=BUB["simulate"],
        seed=config["seed"],
    script:
        "../scripts/simulate_spitzer_field.py"


rule download_spitzer:
    output:
        BUBBLE_PATHS.download,
    log:
        "logs/download_spitzer/{spitzer_file}.log",
    benchmark:
        "benchmarks/rules/download_spitzer/{spitzer_file}.tsv"
    localrule: True
    conda:
        ENV_SKY
    threads: 1
    resources:
        mem_mb=500,
        runtime=120,
    params:
        source=spitzer_download,
        lock=DOWNLOAD_LOCK,
    script:
        "../scripts/download_bubble_file.py"


rule download_bubble_catalog:
    output:
        catalog=BUBBLE_PATHS.mwp_catalog,
        clear_names=BUBBLE_PATHS.mwp_clear_names,
    log:
        "logs/download_bubble_catalog/all.log",
    benchmark:
        "benchmarks/rules/download_bubble_catalog/all.tsv"
    localrule: True
    conda:
        ENV_SKY
    threads: 1
    resources:
        mem_mb=500,
        runtime=10,
    params:
        catalog=BUB["download"]["catalog"],
        clear_names=BUB["download"]["clear_names"],
        lock=DOWNLOAD_LOCK,
    script:
        "../scripts/download_bubble_catalog.py"


rule bubble_catalog:
    input:
        unpack(bubble_catalog_inputs),
    output:
        BUBBLE_PATHS.catalog,
    log:
        "logs/bubble_catalog/all.log",
    benchmark:
        "benchmarks/rules/bubble_catalog/all.tsv"
    priority: PRIORITY.bubble_training
    conda:
        ENV_SKY
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        centres={f: field_center(f)[0] for f in BUBBLE_FIELDS},
        half_width=BUB["simulate"]["width_deg"] / 2,
    script:
        "../scripts/bubble_catalog.py"


# the mock truth of every field, apart from the volunteers' catalogue the detector trains on
rule bubble_truth:
    input:
        fields=expand(BUBBLE_PATHS.mock_truth, field=BUBBLE_FIELDS),
    output:
        BUBBLE_PATHS.truth,
    log:
        "logs/bubble_truth/all.log",
    benchmark:
        "benchmarks/rules/bubble_truth/all.tsv"
    conda:
        ENV_SKY
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        centres={f: field_center(f)[0] for f in BUBBLE_FIELDS},
        half_width=BUB["simulate"]["width_deg"] / 2,
    script:
        "../scripts/bubble_catalog.py"


rule align_spitzer_field:
    input:
        unpack(spitzer_mosaics),
    output:
        BUBBLE_PATHS.aligned,
    log:
        "logs/align_spitzer_field/{field}.log",
    benchmark:
        "benchmarks/rules/align_spitzer_field/{field}.tsv"
    wildcard_constraints:
        field=GLIMPSE_FIELD,
    priority: PRIORITY.bubble_training
    conda:
        ENV_SKY
    threads: 1
    resources:
        mem_mb=bubble_field_mem(5),
        runtime=20,
    params:
        name="{field}",
    script:
        "../scripts/align_spitzer_field.py"


# Any 8 µm + 24 µm pair with a WCS (bubbles.mosaics), 24 µm reprojected onto the 8 µm grid;
# without m24 the field is 8 µm-only (24 µm channel NaN -> zero network input).
use rule align_spitzer_field as align_mosaic_pair with:
    input:
        unpack(mosaic_pair),
    log:
        "logs/align_mosaic_pair/{field}.log",
    benchmark:
        "benchmarks/rules/align_mosaic_pair/{field}.tsv"
    wildcard_constraints:
        field="|".join(map(re.escape, BUBBLE_MOSAICS)) or "(?!)",


rule mask_bubbles:
    input:
        field=BUBBLE_PATHS.aligned,
        catalog=BUBBLE_PATHS.catalog,
    output:
        BUBBLE_PATHS.masked,
    log:
        "logs/mask_bubbles/{field}.log",
    benchmark:
        "benchmarks/rules/mask_bubbles/{field}.tsv"
    priority: PRIORITY.bubble_training
    conda:
        ENV_SKY
    threads: 1
    resources:
        mem_mb=bubble_field_mem(3),
        runtime=10,
    params:
        mask=BUB["mask"],
    script:
        "../scripts/mask_bubbles.py"


rule sample_negatives:
    input:
        field=BUBBLE_PATHS.masked,
        catalog=BUBBLE_PATHS.catalog,
    output:
        BUBBLE_PATHS.negatives,
    log:
        "logs/sample_negatives/{field}.log",
    benchmark:
        "benchmarks/rules/sample_negatives/{field}.tsv"
    priority: PRIORITY.bubble_training
    conda:
        ENV_SKY
    threads: 1
    resources:
        mem_mb=bubble_field_mem(6),
        runtime=30,
    params:
        negatives=BUB["negatives"],
        preprocess=BUB["preprocess"],
        train_fields=BUBBLE_SPLITS["train"],
        seed=config["seed"],
    script:
        "../scripts/sample_negatives.py"


rule group_negatives:
    input:
        negatives=BUBBLE_TRAIN_NEGATIVES,
    output:
        table=BUBBLE_PATHS.negative_groups,
        figures=report(
            BUBBLE_NEG_FIGURES,
            caption="report/bubble_negatives.rst",
            category="Bubble training data",
            subcategory="Negative groups",
        ),
    log:
        "logs/group_negatives/all.log",
    benchmark:
        "benchmarks/rules/group_negatives/all.tsv"
    priority: PRIORITY.bubble_training
    conda:
        ENV_SKY
    threads: 1
    resources:
        mem_mb=3000,
        runtime=20,
    params:
        negatives=BUB["negatives"],
        seed=config["seed"],
    script:
        "../scripts/group_negatives.py"


rule make_validation_windows:
    input:
        fields=split_fields,
        catalog=window_catalog,
    output:
        BUBBLE_PATHS.windows,
    log:
        "logs/make_validation_windows/{bubble_split}.log",
    benchmark:
        "benchmarks/rules/make_validation_windows/{bubble_split}.tsv"
    priority: PRIORITY.bubble_training
    conda:
        ENV_SKY
    threads: 1
    resources:
        mem_mb=4000,
        runtime=10,
    params:
        windows=BUB["windows"],
    script:
        "../scripts/make_validation_windows.py"


rule plot_bubble_field:
    input:
        field=BUBBLE_PATHS.aligned,
        catalog=BUBBLE_PATHS.catalog,
    output:
        report(
            BUBBLE_PATHS.field_figure,
            caption="report/bubble_field.rst",
            category="Bubble training data",
            subcategory="Fields",
        ),
    log:
        "logs/plot_bubble_field/{field}.log",
    benchmark:
        "benchmarks/rules/plot_bubble_field/{field}.tsv"
    conda:
        ENV_SKY
    threads: 1
    resources:
        mem_mb=bubble_field_mem(2),
        runtime=5,
    params:
        box_scale=BUB["windows"]["box_scale"],
    script:
        "../scripts/plot_bubble_field.py"
