"""The Gradio demo (installed as ``zoo.app``); specified in the demo issue, not built yet."""
