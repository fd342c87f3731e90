rule render_shard:
    output:
        directory("results/render/{split}/{shard}"),
    log:
        "logs/render_shard/{split}/{shard}.log",
    benchmark:
        "benchmarks/render_shard/{split}/{shard}.tsv"
    conda:
        "../envs/render.yaml"
    threads: config["render"]["threads"]
    params:
        seeds=shard_seeds,
        settings=settings("render"),
        code=code("stance.render.shard"),
    shell:
        "stance render shard --split {wildcards.split:q} --seeds {params.seeds:q}"
        " --settings {params.settings:q} --code-hash {params.code:q}"
        " --threads {threads} --out {output:q} > {log:q} 2>&1"


rule render_manifest:
    input:
        lambda wildcards: shard_dirs("render"),
    output:
        "results/render/manifest.parquet",
    log:
        "logs/render_manifest.log",
    benchmark:
        "benchmarks/render_manifest.tsv"
    conda:
        "../envs/render.yaml"
    params:
        code=code("stance.render.shard"),
    shell:
        "stance render manifest {input:q} --out {output:q} > {log:q} 2>&1"
