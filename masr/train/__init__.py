"""The training-loop foundation shared by every task: checkpoints, exact resume, LR schedules,
bf16 autocast, gradient accumulation and clipping, DDP, logs and TensorBoard scalars."""
