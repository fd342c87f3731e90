rule cue_shard:
    input:
        render="results/render/{split}/{shard}",
        depth="results/depth/{split}/{shard}",
    output:
        directory("results/cues/{split}/{shard}"),
    log:
        "logs/cue_shard/{split}/{shard}.log",
    benchmark:
        "benchmarks/cue_shard/{split}/{shard}.tsv"
    conda:
        "../envs/cues.yaml"
    params:
        settings=settings("cues"),
        code=code("stance.cues.runner"),
    shell:
        "stance cues shard --render {input.render:q} --depth {input.depth:q}"
        " --settings {params.settings:q} --code-hash {params.code:q}"
        " --out {output:q} > {log:q} 2>&1"


rule cue_dz_report:
    input:
        render=lambda wildcards: shard_dirs("render"),
        cues=lambda wildcards: shard_dirs("cues"),
    output:
        table="results/cues/dz_report.csv",
        card="results/cues/dz_report.md",
    log:
        "logs/cue_dz_report.log",
    benchmark:
        "benchmarks/cue_dz_report.tsv"
    conda:
        "../envs/cues.yaml"
    params:
        settings=settings("cues"),
        code=code("stance.cues.runner"),
    shell:
        "stance cues dz-report --render {input.render:q} --cues {input.cues:q}"
        " --settings {params.settings:q} --out {output.table:q} > {log:q} 2>&1"
