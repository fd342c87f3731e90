"""The command prefix that starts training: one process, one node, or several nodes.

The train rule runs `<prefix> train fit ...`. With one GPU (or none) that is plain
`stance`; with more, `accelerate launch` starts one process per GPU using
`train.accelerate_config`; with `train.num_nodes > 1`, srun starts one `accelerate
launch` per node inside the Slurm job, each taking its machine rank from SLURM_NODEID and
the job's first node as the rendezvous address (read on each node, hence the quotes).
The shared backbone's pretraining on a CPU may instead run as several local processes
(train.pretrain_cpu_processes), each on its share of the job's threads.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from stance import config
from stance.settings import Train

RENDEZVOUS_PORT = 29500
# the thread counts Snakemake sets for a job (its threads), split between CPU processes
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
# DDP over gloo on the CPU: the plain DDP launch config, the GPUs hidden from the ranks
CPU_LAUNCH_CONFIG = Path(__file__).resolve().parents[1] / "configs/accelerate/ddp_single_node.yaml"
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


def pretrain_command_prefix(train: Train) -> str:
    """The pretraining job's prefix: `command_prefix`, or on a CPU with
    train.pretrain_cpu_processes > 1 an `accelerate launch` of that many processes that
    share the job's threads (Snakemake's OMP_NUM_THREADS), at least one each. Snakemake
    also sets MKL_NUM_THREADS and OPENBLAS_NUM_THREADS to the job's threads; left at
    that, each process's math library runs that many threads too, and two processes on
    two cores take 3.7 s per step instead of 0.28 s."""
    processes = train.pretrain_cpu_processes
    if processes == 1:  # the config allows more only with num_gpus 0 on one node
        return command_prefix(train)
    share = f"${{OMP_NUM_THREADS:-1}} / {processes}"
    each = " ".join(f"{name}=$share" for name in THREAD_VARIABLES)
    config_file = shlex.quote(str(CPU_LAUNCH_CONFIG))
    return (
        f"share=$(( {share} > 0 ? {share} : 1 )); CUDA_VISIBLE_DEVICES= {each}"
        f" accelerate launch --config_file {config_file}"
        f" --num_processes {processes} --num_machines 1 -m stance.cli"
    )
