rule depth_shard:
    input:
        render="results/render/{split}/{shard}",
        model=depth_model_input,
    output:
        directory("results/depth/{split}/{shard}"),
    log:
        "logs/depth_shard/{split}/{shard}.log",
    benchmark:
        "benchmarks/depth_shard/{split}/{shard}.tsv"
    conda:
        "../envs/cues.yaml"
    threads: 2
    resources:
        depth_batch_size=config["depth"]["batch_size"],
    params:
        model=config["models"]["depth"],
        settings=settings("depth", without=("batch_size",)),
        code=code("stance.cues.depth"),
    shell:
        "stance depth shard --render {input.render} --model {params.model}"
        " --settings {params.settings:q} --batch-size {resources.depth_batch_size}"
        " --code-hash {params.code} --out {output} > {log} 2>&1"
