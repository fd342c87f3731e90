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
    resources:  # operational: Snakemake does not rerun a job when these change
        depth_batch_size=config["depth"]["batch_size"],
        depth_device=config["depth"]["device"],
    params:
        model=config["models"]["depth"],
        settings=settings("depth"),
        code=code("stance.depth.shard"),
    shell:
        "stance depth shard --render {input.render:q} --model {params.model:q}"
        " --settings {params.settings:q} --batch-size {resources.depth_batch_size}"
        " --device {resources.depth_device:q}"
        " --code-hash {params.code:q} --out {output:q} > {log:q} 2>&1"
