"""callqa's pipeline, in packages by step of the flow (see README "How it fits together").

Base modules: `core.config` (the one `Settings`), `core.clock` (the one "now"), `core.calls`
(the data contract between stages), `core.text_norm`, `core.stage_cpu`. Then, each importing
only what comes before it: audio, asr, rubric, storage, scoring, live, ingest, capacity, api,
daemon, cli.
"""
