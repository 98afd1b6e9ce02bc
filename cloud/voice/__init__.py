"""One-key voice in the cloud (docs/voice.md): the calls between call buttons' homes and the
duty room's browsers, relayed (signalling only: the audio goes directly, or through TURN)."""
