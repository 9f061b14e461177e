"""Every text the UI shows, in English and Chinese. Labels follow LlamaBoard's so its tutorials apply.

Keys for config fields are ``<section>.<field>`` (see engine/config.py); the
value is (label, info). Other keys are plain messages, formatted with
``str.format`` arguments.
"""

from __future__ import annotations

LANGUAGES = (("English", "en"), ("中文", "zh"))
DEFAULT_LANG = "en"

# Config field controls: key -> {lang: (label, info)}
FIELD_TEXT: dict[str, dict[str, tuple[str, str]]] = {
    "train.stage": {"en": ("Stage", "The training stage."), "zh": ("训练阶段", "目前采用的训练方式。")},
    "data.dataset_dir": {"en": ("Data dir", "Folder holding dataset_info.json."),
                         "zh": ("数据路径", "包含 dataset_info.json 的文件夹。")},
    "data.datasets": {"en": ("Dataset", "One or more datasets."), "zh": ("数据集", "可以选择多个数据集。")},
    "train.learning_rate": {"en": ("Learning rate", "Initial learning rate for AdamW."),
                            "zh": ("学习率", "AdamW 优化器的初始学习率。")},
    "train.num_train_epochs": {"en": ("Epochs", "Total number of training epochs."),
                               "zh": ("训练轮数", "需要执行的训练总轮数。")},
    "data.max_samples": {"en": ("Max samples", "Maximum samples per dataset (0: all)."),
                         "zh": ("最大样本数", "每个数据集的最大样本数（0 表示全部）。")},
    "data.cutoff_len": {"en": ("Cutoff length", "Max tokens of a sample."),
                        "zh": ("截断长度", "单个样本的最大 token 数。")},
    "train.compute_type": {"en": ("Compute type", "auto picks bf16 where the hardware runs it fast."),
                           "zh": ("计算类型", "auto：硬件支持时使用 bf16。")},
    "train.per_device_train_batch_size": {"en": ("Batch size", "Samples per device per step."),
                                          "zh": ("批处理大小", "每个设备每步处理的样本数。")},
    "train.gradient_accumulation_steps": {"en": ("Gradient accumulation", "Steps per optimizer update."),
                                          "zh": ("梯度累积", "每次参数更新累积的步数。")},
    "train.lr_scheduler_type": {"en": ("LR scheduler", "Learning rate schedule."),
                                "zh": ("学习率调节器", "学习率的变化方式。")},
    "data.val_size": {"en": ("Val size", "Share of samples held out for validation."),
                      "zh": ("验证集比例", "验证集占全部样本的比例。")},
    "train.logging_steps": {"en": ("Logging steps", "Log every N steps."), "zh": ("日志间隔", "每两次日志输出间的更新步数。")},
    "train.save_steps": {"en": ("Save steps", "Save a checkpoint every N steps."),
                         "zh": ("保存间隔", "每两次断点保存间的更新步数。")},
    "train.warmup_steps": {"en": ("Warmup steps", "Steps of learning-rate warm-up."), "zh": ("预热步数", "学习率预热的步数。")},
    "train.max_grad_norm": {"en": ("Max grad norm", "Gradient clipping norm."), "zh": ("最大梯度范数", "梯度裁剪的阈值。")},
    "train.seed": {"en": ("Seed", "Random seed."), "zh": ("随机种子", "随机数种子。")},
    "lora.rank": {"en": ("LoRA rank", "Rank of the LoRA matrices."), "zh": ("LoRA 秩", "LoRA 矩阵的秩大小。")},
    "lora.alpha": {"en": ("LoRA alpha", "Scale factor of LoRA."), "zh": ("LoRA 缩放系数", "LoRA 缩放系数大小。")},
    "lora.dropout": {"en": ("LoRA dropout", "Dropout on LoRA inputs."), "zh": ("LoRA 随机丢弃", "LoRA 权重随机丢弃的概率。")},
    "lora.target": {"en": ("LoRA modules", "`all`, or comma-separated module names."),
                    "zh": ("LoRA 作用模块", "`all` 或以逗号分隔的模块名称。")},
    "freeze.trainable_layers": {"en": ("Trainable layers", "Number of last layers to train."),
                                "zh": ("可训练层数", "最末尾可训练的隐藏层数量。")},
    "data.identity_name": {"en": ("Assistant name", "Fills {{name}} in identity data."),
                           "zh": ("助手名称", "填入身份数据中的 {{name}}。")},
    "data.identity_author": {"en": ("Assistant author", "Fills {{author}} in identity data."),
                             "zh": ("助手作者", "填入身份数据中的 {{author}}。")},
}

MESSAGES: dict[str, dict[str, str]] = {
    # tabs and groups
    "tab_train": {"en": "Train", "zh": "训练"},
    "tab_eval": {"en": "Evaluate & Predict", "zh": "评估&预测"},
    "tab_chat": {"en": "Chat", "zh": "对话"},
    "tab_export": {"en": "Export", "zh": "导出"},
    "group_extra": {"en": "Extra configurations", "zh": "其它参数设置"},
    "group_lora": {"en": "LoRA configurations", "zh": "LoRA 参数设置"},
    "group_freeze": {"en": "Freeze tuning configurations", "zh": "部分参数微调设置"},
    "group_identity": {"en": "Identity placeholders", "zh": "身份占位符"},
    "title": {"en": "TuneBoard — fine-tune LLMs in your browser", "zh": "TuneBoard — 在浏览器中微调大模型"},
    # top bar
    "lang": {"en": "Language", "zh": "语言"},
    "model_name": {"en": "Model name", "zh": "模型名称"},
    "model_path": {"en": "Model path", "zh": "模型路径"},
    "model_path_info": {"en": "Local folder or hub id.", "zh": "本地模型的文件路径或 Hugging Face 模型标识符。"},
    "finetuning_type": {"en": "Finetuning method", "zh": "微调方法"},
    "checkpoint_path": {"en": "Checkpoint path", "zh": "检查点路径"},
    "checkpoint_info": {"en": "Finished runs of this model and method; empty for the base model.",
                        "zh": "该模型与方法下已完成的训练；留空表示基础模型。"},
    "template": {"en": "Chat template", "zh": "对话模板"},
    "template_info": {"en": "auto: the tokenizer's own template.", "zh": "auto：使用分词器自带的模板。"},
    "device": {"en": "Device", "zh": "设备"},
    "trust_remote_code": {"en": "Trust remote code", "zh": "信任远程代码"},
    # train tab buttons
    "preview_dataset": {"en": "Preview dataset", "zh": "预览数据集"},
    "previous": {"en": "Previous", "zh": "上一页"},
    "next": {"en": "Next", "zh": "下一页"},
    "close": {"en": "Close", "zh": "关闭"},
    "preview_command": {"en": "Preview command", "zh": "预览命令"},
    "save_arguments": {"en": "Save arguments", "zh": "保存训练参数"},
    "load_arguments": {"en": "Load arguments", "zh": "载入训练参数"},
    "start": {"en": "Start", "zh": "开始"},
    "stop": {"en": "Stop", "zh": "中断"},
    "demo_preset": {"en": "Demo preset", "zh": "演示预设"},
    "output_dir": {"en": "Output dir", "zh": "输出目录"},
    "output_dir_info": {"en": "Run name, saved under saves/<model>/<method>/.",
                        "zh": "训练名称，保存在 saves/<模型>/<方法>/ 下。"},
    "config_path": {"en": "Config path", "zh": "配置路径"},
    "config_path_info": {"en": "File name under configs/ for Save / Load arguments.",
                         "zh": "保存/载入训练参数时使用的 configs/ 下的文件名。"},
    "command": {"en": "Command", "zh": "命令"},
    "log": {"en": "Log", "zh": "日志"},
    "loss_plot": {"en": "Loss", "zh": "损失"},
    "status": {"en": "Status", "zh": "状态"},
    # train messages
    "training_finished": {"en": "Training finished", "zh": "训练完毕"},
    "training_stopped": {"en": "Training stopped; the weights so far were saved.", "zh": "训练已中断，已保存当前权重。"},
    "training_failed": {"en": "Training failed: {error}", "zh": "训练失败：{error}"},
    "training_started": {"en": "Training started: {path}", "zh": "训练开始：{path}"},
    "training_loading": {"en": "Loading model and data…", "zh": "正在加载模型与数据……"},
    "training_queued": {"en": "Waiting to start…", "zh": "等待开始……"},
    "stop_sent": {"en": "Stopping after the current step…", "zh": "将在当前步结束后中断……"},
    "nothing_running": {"en": "No training is running.", "zh": "当前没有正在进行的训练。"},
    "already_running": {"en": "A training run is already running: {path}", "zh": "已有训练正在进行：{path}"},
    "run_exists": {"en": "Output dir {path} already holds a run; choose another name.",
                   "zh": "输出目录 {path} 已存在训练记录，请换一个名称。"},
    "progress": {"en": "Step {step} / {total} · elapsed {elapsed} · remaining {remaining}",
                 "zh": "步数 {step} / {total} · 已用 {elapsed} · 剩余 {remaining}"},
    "invalid_value": {"en": "Invalid value — {error}", "zh": "参数无效 — {error}"},
    "arguments_saved": {"en": "Arguments saved to {path}", "zh": "训练参数已保存至 {path}"},
    "arguments_loaded": {"en": "Arguments loaded from {path}", "zh": "已从 {path} 载入训练参数"},
    "config_not_found": {"en": "Config file {path} does not exist.", "zh": "配置文件 {path} 不存在。"},
    "preset_applied": {"en": "Demo preset applied: identity + general data, a few minutes on a CPU.",
                       "zh": "已应用演示预设：身份数据 + 通用数据，CPU 上几分钟即可完成。"},
    # dataset preview
    "no_dataset": {"en": "Choose a dataset first.", "zh": "请先选择数据集。"},
    "dataset_error": {"en": "Dataset problem — {error}", "zh": "数据集有问题 — {error}"},
    "preview_info": {"en": "**{name}**: {total} samples · page {page} / {pages}",
                     "zh": "**{name}**：共 {total} 条样本 · 第 {page} / {pages} 页"},
    "col_row": {"en": "Row", "zh": "行号"},
    "col_system": {"en": "System", "zh": "系统提示词"},
    "col_prompt": {"en": "Prompt", "zh": "提示"},
    "col_response": {"en": "Response", "zh": "回答"},
    "col_error": {"en": "Error", "zh": "错误"},
    # chat tab
    "load_model": {"en": "Load model", "zh": "加载模型"},
    "unload_model": {"en": "Unload model", "zh": "卸载模型"},
    "system_prompt": {"en": "System prompt", "zh": "系统提示词"},
    "system_prompt_info": {"en": "Empty: the template's default.", "zh": "留空：使用模板默认值。"},
    "query": {"en": "Input", "zh": "输入"},
    "query_placeholder": {"en": "Ask something, e.g. Who are you?", "zh": "输入问题，例如：你好，你是谁？"},
    "submit": {"en": "Submit", "zh": "提交"},
    "stop_generation": {"en": "Stop generation", "zh": "停止生成"},
    "clear_history": {"en": "Clear history", "zh": "清空历史"},
    "max_new_tokens": {"en": "Max new tokens", "zh": "最大生成长度"},
    "top_p": {"en": "Top-p", "zh": "Top-p 采样值"},
    "temperature": {"en": "Temperature", "zh": "温度系数"},
    "chatbot": {"en": "Chat", "zh": "对话"},
    "model_loading": {"en": "Loading model…", "zh": "正在加载模型……"},
    "model_loaded": {"en": "Model loaded: {model}{adapter} on {device}. You can chat now.",
                     "zh": "模型已加载：{model}{adapter}（{device}），可以开始对话了。"},
    "with_adapter": {"en": " + {adapter}", "zh": " + {adapter}"},
    "model_unloaded": {"en": "Model unloaded.", "zh": "模型已卸载。"},
    "model_not_loaded": {"en": "Load a model first.", "zh": "请先加载模型。"},
    "model_load_failed": {"en": "Cannot load the model — {error}", "zh": "无法加载模型 — {error}"},
    "generation_failed": {"en": "Generation failed — {error}", "zh": "生成失败 — {error}"},
    # loss plot
    "plot_step": {"en": "step", "zh": "步数"},
    "plot_loss": {"en": "loss", "zh": "损失"},
    "plot_smoothed": {"en": "smoothed", "zh": "平滑"},
    "plot_eval_loss": {"en": "eval loss", "zh": "验证损失"},
}


def t(lang: str, key: str, **kwargs) -> str:
    """The message ``key`` in ``lang`` (English if missing), formatted with ``kwargs``."""
    entry = MESSAGES[key]
    text = entry.get(lang) or entry[DEFAULT_LANG]
    return text.format(**kwargs) if kwargs else text


def field_text(lang: str, key: str) -> tuple[str, str]:
    entry = FIELD_TEXT[key]
    return entry.get(lang) or entry[DEFAULT_LANG]


def plot_labels(lang: str) -> dict[str, str]:
    return {k: t(lang, f"plot_{k}") for k in ("step", "loss", "smoothed", "eval_loss")}
