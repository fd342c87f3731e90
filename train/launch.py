"""The command prefix that starts training: one process, one node, or several nodes.

The train rule runs `<prefix> train fit ...`. With one GPU (or none) that is plain
`stance`; with more, `accelerate launch` starts one process per GPU using
`train.accelerate_config`; with `train.num_nodes > 1`, srun starts one `accelerate
launch` per node inside the Slurm job, each taking its machine rank from SLURM_NODEID and
the job's first node as the rendezvous address (read on each node, hence the quotes).
"""

from __future__ import annotations

import shlex

from stance import config
from stance.settings import Train

RENDEZVOUS_PORT = 29500
# How a training run is babysat, never what it computes (the schema's operational train
# keys): passed to the job as Snakemake resources (no rerun), left out of the run hash (a
# change resumes the same run).
BABYSITTING = config.operational("train")


def command_prefix(train: Train) -> str:
    gpus, nodes = train.num_gpus, train.num_nodes
    if gpus <= 1 and nodes == 1:
        return "stance"
    # The config path is data from the user's config: quoted, never shell code.
    config_file = shlex.quote(str(train.accelerate_config))
    counts = f" --num_processes {max(gpus, 1) * nodes} --num_machines {nodes}"
    if nodes == 1:
        return f"accelerate launch --config_file {config_file}{counts} -m stance.cli"
    launch = f'accelerate launch --config_file "$STANCE_ACCELERATE_CONFIG"{counts}'
    per_node = (
        f"{launch} --machine_rank $SLURM_NODEID --main_process_port {RENDEZVOUS_PORT}"
        " --main_process_ip $(scontrol show hostnames $SLURM_JOB_NODELIST | head -n 1)"
        ' -m stance.cli "$@"'
    )
    # --overlap: the job's own step (Snakemake's) already holds this node's CPUs
    return (
        f"STANCE_ACCELERATE_CONFIG={config_file} srun --overlap --nodes {nodes}"
        f" --ntasks-per-node 1 bash -c '{per_node}' stance"
    )
