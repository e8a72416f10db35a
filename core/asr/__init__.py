"""Speech recognition: Whisper on CTranslate2 for pre-cut utterances, many lines at once.

* `core.asr.engine`: `AsrEngine`, batched transcription of utterances.
* `core.asr.types`: options, requests, results, the `Transcriber` protocol, window policy.
* `core.asr.device`: CPU or GPU, compute types, cuBLAS loading and fallback.
* `core.asr.models`: where the embedded and configured Whisper models live.
* `core.asr.tokenizer`: Whisper's byte-level BPE tokenizer.
* `core.asr.filters`: phantom phrases and repetition loops in Whisper output.
* `core.asr.speech_check`: the second-stage VAD (Silero on onnxruntime) before Whisper.
* `core.asr.silero_model`: the Silero model, taken from its wheel at set-up and hash-checked.
"""

__all__ = [
    "device", "engine", "filters", "models", "silero_model", "speech_check", "tokenizer",
    "types",
]  # fmt: skip
