"""The AkiDB worker: owns one model on one device and embeds the jobs the gateway sends it."""
