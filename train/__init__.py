"""STANCE training and generation stage (planned, not yet in the DAG): CogVideoX-1.5 I2V
with a cue MLP tokenizer, Dense RoPE motion tokens and joint RGB + auxiliary streams."""
