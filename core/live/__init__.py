"""The live pipeline of the daemon: legs, ASR scheduling, live rules, alerts and events."""
