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
        settings=settings("render", without=("threads",)),
        code=code("stance.render.shard"),
    shell:
        "stance render shard --split {wildcards.split} --seeds {params.seeds}"
        " --settings {params.settings:q} --code-hash {params.code}"
        " --threads {threads} --out {output} > {log} 2>&1"


rule render_manifest:
    input:
        render_shard_dirs,
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
        "stance render manifest {input:q} --out {output} > {log} 2>&1"
