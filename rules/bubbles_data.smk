# Spitzer bubbles, data side: mosaics (mock / download / local, and any named 8 µm + 24 µm
# pair), the catalogue, aligned and masked fields, negative windows and their k-means
# groups, validation/test windows.
#
# For the model side (rules/bubbles_model.smk):
#   BUBBLE_SPLITS[split]      -> field codes of train / validation / test
#   SURVEY_FIELDS             -> field codes of the whole-plane survey (bubbles.survey)
#   bubble_field(field)       -> "results/bubbles/aligned/{field}.fits" (both bands, 8 µm grid)
#   BUBBLE_CATALOG            -> "results/bubbles/catalog.ecsv" (what training reads)
#   BUBBLE_TRUTH              -> "results/bubbles/truth.ecsv" (the mock's truth: what the
#                                test windows and detection figures show; else BUBBLE_CATALOG)
#   bubble_negatives()        -> the negatives HDF5 files of the training fields
#   BUBBLE_NEG_GROUPS         -> "results/bubbles/negatives/groups.ecsv"
#   bubble_windows(split)     -> "results/bubbles/windows/{split}.h5"


include: "bubbles_common.smk"


rule simulate_spitzer_field:
    input:
        unpack(simulate_positions),
    output:
        i4="results/bubbles/spitzer/{field}/GLM_{field}_mosaic_I4.fits",
        m1="results/bubbles/spitzer/{field}/MPG_{field}_mosaic_M1.fits",
        truth="results/bubbles/spitzer/{field}/truth.ecsv",
        catalog="results/bubbles/spitzer/{field}/catalog.ecsv",
    log:
        "logs/simulate_spitzer_field/{field}.log",
    benchmark:
        "benchmarks/rules/simulate_spitzer_field/{field}.tsv"
    wildcard_constraints:
        field=GLIMPSE_FIELD,
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
        "results/bubbles/download/{spitzer_file}",
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
        catalog="results/bubbles/download/mwp_dr2.csv",
        clear_names="results/bubbles/download/mwp_dr2_clear.npy",
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
        BUBBLE_CATALOG,
    log:
        "logs/bubble_catalog/all.log",
    benchmark:
        "benchmarks/rules/bubble_catalog/all.tsv"
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
        fields=expand("results/bubbles/spitzer/{field}/truth.ecsv", field=BUBBLE_FIELDS),
    output:
        "results/bubbles/truth.ecsv",
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
        "results/bubbles/aligned/{field}.fits",
    log:
        "logs/align_spitzer_field/{field}.log",
    benchmark:
        "benchmarks/rules/align_spitzer_field/{field}.tsv"
    wildcard_constraints:
        field=GLIMPSE_FIELD,
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
        field="results/bubbles/aligned/{field}.fits",
        catalog=BUBBLE_CATALOG,
    output:
        "results/bubbles/masked/{field}.fits",
    log:
        "logs/mask_bubbles/{field}.log",
    benchmark:
        "benchmarks/rules/mask_bubbles/{field}.tsv"
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
        field="results/bubbles/masked/{field}.fits",
        catalog=BUBBLE_CATALOG,
    output:
        "results/bubbles/negatives/{field}.h5",
    log:
        "logs/sample_negatives/{field}.log",
    benchmark:
        "benchmarks/rules/sample_negatives/{field}.tsv"
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
        negatives=bubble_negatives(),
    output:
        table=BUBBLE_NEG_GROUPS,
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
    priority: 10  # feeds train_ssd, the longest job: not left until the cluster side is done
    conda:
        ENV_SKY
    threads: 2
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
        "results/bubbles/windows/{bubble_split}.h5",
    log:
        "logs/make_validation_windows/{bubble_split}.log",
    benchmark:
        "benchmarks/rules/make_validation_windows/{bubble_split}.tsv"
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
        field="results/bubbles/aligned/{field}.fits",
        catalog=BUBBLE_CATALOG,
    output:
        report(
            "results/bubbles/figures/field_{field}.png",
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


if "bubbles" in config["detectors"]:
    FINAL_OUTPUT.extend(
        [
            BUBBLE_CATALOG,
            BUBBLE_TRUTH,
            *expand(
                "results/bubbles/masked/{field}.fits", field=BUBBLE_SPLITS["train"]
            ),
            *bubble_negatives(),
            BUBBLE_NEG_GROUPS,
            *BUBBLE_NEG_FIGURES,
            bubble_windows("validation"),
            bubble_windows("test"),
            *expand(
                "results/bubbles/figures/field_{field}.png", field=BUBBLE_SPLIT_FIELDS
            ),
        ]
    )
