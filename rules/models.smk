rule tiny_depth_model:
    output:
        directory(TINY_DEPTH_MODEL),
    log:
        "logs/tiny_depth_model.log",
    benchmark:
        "benchmarks/tiny_depth_model.tsv"
    conda:
        "../envs/cues.yaml"
    params:
        code=code("stance.depth.model"),
    shell:
        "stance models make-tiny depth --out {output:q} > {log:q} 2>&1"


rule tiny_video_model:
    output:
        directory(TINY_VIDEO_MODEL),
    log:
        "logs/tiny_video_model.log",
    benchmark:
        "benchmarks/tiny_video_model.tsv"
    conda:
        "../envs/train.yaml"
    params:
        code=code("stance.train.tiny"),
    shell:
        "stance models make-tiny video --out {output:q} > {log:q} 2>&1"
