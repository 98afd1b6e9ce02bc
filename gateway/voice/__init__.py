"""One-key voice on the gateway (一键语音, docs/voice.md): WebRTC (aiortc) between the call
button's home and the duty room's browser, signalled over `cmd/voice` and the Reply."""
