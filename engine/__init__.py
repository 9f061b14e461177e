"""TuneBoard's engine: data, templates, models, training and chat. Never imports gradio."""
