"""The local-sharpening run: plan, box pass, blend pass, their tasks, inputs, resume and the result."""
