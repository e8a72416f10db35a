"""Audio before recognition: reading recordings, cutting legs into utterances, sample calls.

* `core.audio.wav`: RIFF/WAVE reading and writing (PCM16, G.711 mu-law and A-law).
* `core.audio.segmentation`: the endpointer over the streaming VAD, offline and live.
* `core.audio.samples`: the synthetic sample calls of the demo (espeak-ng and sox).
"""

__all__ = ["samples", "segmentation", "wav"]
