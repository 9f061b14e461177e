"""Every text the UI shows, in English and Chinese here and in Japanese, Korean and Russian in webui/locale_ja.py,
locale_ko.py and locale_ru.py (merged below). Labels follow LlamaBoard's so its tutorials apply.

Keys for config fields are ``<section>.<field>`` (see engine/core/config.py); the
value is (label, info). Other keys are plain messages, formatted with
``str.format`` arguments. tests/webui/test_locales.py checks that every key has every language.
Engine errors' messages (cfg_err_<key>, data_err_<key>) take their English from the engine's
CONFIG_MESSAGES / DATA_MESSAGES; webui/errors.py renders them.
"""

from __future__ import annotations

from engine.core.arena import ARENA_MESSAGES
from engine.core.config import CONFIG_MESSAGES, EXTRA_ARGS
from engine.core.data.errors import DATA_MESSAGES, DATA_WHERE
from engine.core.download import DOWNLOAD_MESSAGES
from webui import locale_ja, locale_ko, locale_ru

_ALLOWED = ", ".join(f"`{name}`" for name in EXTRA_ARGS)  # info text is Markdown: names as code

LANGUAGES = (("English", "en"), ("中文", "zh"), ("日本語", "ja"), ("한국어", "ko"), ("Русский", "ru"))
DEFAULT_LANG = "en"

# Config field controls: key -> {lang: (label, info)}
FIELD_TEXT: dict[str, dict[str, tuple[str, str]]] = {
    # model-load and data options (top bar's advanced settings, Extra)
    "model.rope_scaling": {"en": ("RoPE scaling", "RoPE scaling method to use. Training scales by ceil(cutoff / the "
                                                  "model's max positions) when the cutoff is longer; chat and "
                                                  "evaluation by 2."),
                           "zh": ("RoPE 插值方法", "RoPE 插值时使用的方法。训练时截断长度超过模型的最大位置数则按 ceil(截断长度 / 最大位置数) 缩放；对话与评估按 2 缩放。")},
    "model.booster": {"en": ("Booster", "Approach used to boost training speed. auto: TuneBoard's own fast paths; "
                                        "flashattn2 and liger_kernel need a CUDA GPU and their package (flash-attn, "
                                        "liger-kernel); none: plain transformers."),
                      "zh": ("加速方式", "使用的加速方法。auto：TuneBoard 自带的加速；flashattn2 和 liger_kernel 需要 CUDA GPU "
                                     "及相应的包（flash-attn、liger-kernel）；none：原生 transformers。")},
    "data.neat_packing": {"en": ("Use neat packing", "Avoid cross-attention between packed sequences; off, the "
                                                     "samples of a packed row attend to each other."),
                          "zh": ("使用无污染打包", "避免打包后的序列产生交叉注意力；关闭时，同一行中的样本会相互注意。")},
    "train.resize_vocab": {"en": ("Resize token embeddings", "Resize the tokenizer vocab and the embedding layers "
                                                             "(to the tokenizer's length, a multiple of 64) and "
                                                             "train them."),
                           "zh": ("更改词表大小", "更改分词器词表和嵌入层的大小（按分词器长度，取 64 的倍数）并训练它们。")},
    "train.shift_attn": {"en": ("Enable S^2 Attention", "Use shift short attention proposed by LongLoRA (training "
                                                        "only; needs packing off)."),
                         "zh": ("使用 S^2 Attention", "使用 LongLoRA 提出的 shift short attention（仅训练时；需关闭序列打包）。")},
    "freeze.use_llama_pro": {"en": ("Enable LLaMA Pro", "Make the parameters in the expanded blocks trainable: adds "
                                                        "as many identity-initialised blocks as the trainable "
                                                        "layers (freeze method)."),
                             "zh": ("使用 LLaMA Pro", "仅训练块扩展后的参数：按可训练层数添加以恒等方式初始化的新块（freeze 方法）。")},
    # top bar
    "model.model_name_or_path": {"en": ("Model path", "Local folder, or the model's id on the model hub."),
                                 "zh": ("模型路径", "本地模型的文件路径，或模型在模型下载源上的标识符。")},
    "model.hub": {"en": ("Model hub", "Where model ids are downloaded from. The default follows "
                                      "`USE_MODELSCOPE_HUB=1` / `USE_OPENMIND_HUB=1`, as in LlamaBoard."),
                  "zh": ("模型下载源", "模型标识符从哪里下载。默认值与 LlamaBoard 一致，遵循 `USE_MODELSCOPE_HUB=1` / "
                                       "`USE_OPENMIND_HUB=1`。")},
    "train.finetuning_type": {"en": ("Finetuning method", "lora: small adapters; freeze: the last layers; full: all "
                                                          "weights."),
                              "zh": ("微调方法", "lora：训练小型适配器；freeze：训练最后几层；full：训练全部参数。")},
    "model.adapter_path": {"en": ("Checkpoint path", "Runs and saved checkpoints of this model and method; empty for "
                                                     "the base model."),
                           "zh": ("检查点路径", "该模型与方法下的训练及其保存的检查点；留空表示基础模型。")},
    "model.quantization_bit": {"en": ("Quantization bit", "Enable quantization (QLoRA): 8 or 4 bits through "
                                                          "bitsandbytes; LoRA on CUDA GPUs only."),
                               "zh": ("量化等级", "启用量化（QLoRA）：通过 bitsandbytes 使用 8 或 4 比特；仅限 CUDA GPU 上的 "
                                                  "LoRA。")},
    "model.template": {"en": ("Chat template", "auto: the tokenizer's own template."),
                       "zh": ("对话模板", "auto：使用分词器自带的模板。")},
    "model.device": {"en": ("Device", "auto picks CUDA, Ascend NPU, MPS or CPU."),
                     "zh": ("设备", "auto：自动选择 CUDA、昇腾 NPU、MPS 或 CPU。")},
    "model.trust_remote_code": {"en": ("Trust remote code", "Run model code shipped with the checkpoint."),
                                "zh": ("信任远程代码", "允许运行模型自带的代码。")},
    "train.probe_questions": {"en": ("Probe questions", "The model answers these (greedy decoding) at step 0, at "
                                                        "every save and evaluation and at the end, shown in a table "
                                                        "next to the loss curve; one per line, empty for none. Write "
                                                        "`question => expectation` to score each answer 0-100: "
                                                        "`contains:` (also with no prefix), `exact:`, `regex:`, or a "
                                                        "reference answer after `rouge-l:` or `bleu-4:`."),
                              "zh": ("探针问题", "模型在第 0 步、每次保存与评估时以及训练结束时（贪心解码）回答这些问题，"
                                                 "结果显示在损失曲线旁的表格中；每行一个，留空则不提问。写成 "
                                                 "`question => expectation` 可为每个回答打分（0-100）：`contains:`"
                                                 "（不写前缀也是包含）、`exact:`、`regex:`，或在 `rouge-l:`、`bleu-4:` "
                                                 "后写参考答案。")},
    "train.probe_dataset": {"en": ("Probe dataset", "A dataset of the data folder whose first rows are probes too: "
                                                    "each row's prompt is asked and its answer (a preference row's "
                                                    "chosen one) is the reference the model's answer is scored "
                                                    "against. Empty: none."),
                            "zh": ("探针数据集", "数据目录中的一个数据集，其前几行也作为探针：提问每行的提示，并以该行的回答"
                                                 "（偏好数据取 chosen）为参考答案为模型回答打分。留空则不使用。")},
    "train.probe_dataset_rows": {"en": ("Probe dataset rows", "How many of the probe dataset's first rows are "
                                                              "asked (with the typed questions, at most 8 in all)."),
                                 "zh": ("探针数据集行数", "提问探针数据集的前多少行（与手写问题合计最多 8 个）。")},
    "train.probe_reference_metric": {"en": ("Probe reference metric", "How an answer is scored against a probe "
                                                                      "dataset's reference answer (Chinese is "
                                                                      "segmented into words)."),
                                     "zh": ("探针参考指标", "以何种指标将回答与探针数据集的参考答案比较（中文先分词）。")},
    "train.probe_max_new_tokens": {"en": ("Probe answer length", "Longest probe answer, in tokens."),
                                   "zh": ("探针回答长度", "探针回答的最大 token 数。")},
    # train tab: basic
    "train.stage": {"en": ("Stage", "The stage to perform in training."), "zh": ("训练阶段", "目前采用的训练方式。")},
    "data.dataset_dir": {"en": ("Data dir", "Folder holding dataset_info.json."),
                         "zh": ("数据路径", "包含 dataset_info.json 的文件夹。")},
    "data.datasets": {"en": ("Dataset", "One or more datasets."), "zh": ("数据集", "可以选择多个数据集。")},
    "train.learning_rate": {"en": ("Learning rate", "Initial learning rate for AdamW."),
                            "zh": ("学习率", "AdamW 优化器的初始学习率。")},
    "train.num_train_epochs": {"en": ("Epochs", "Total number of training epochs."),
                               "zh": ("训练轮数", "需要执行的训练总轮数。")},
    "data.max_samples": {"en": ("Max samples", "Maximum samples per dataset (0: all)."),
                         "zh": ("最大样本数", "每个数据集的最大样本数（0 表示全部）。")},
    "data.cutoff_len": {"en": ("Cutoff length", "Max tokens of a sample: longer ones are cut, ones whose answer lies "
                                                "wholly beyond it are skipped (the log says how many)."),
                        "zh": ("截断长度", "单个样本的最大 token 数：更长的样本会被截断，回答完全超出该长度的样本会被跳过"
                                           "（日志中会说明数量）。")},
    "train.compute_type": {"en": ("Compute type", "Whether to use mixed precision: auto picks bf16 where the hardware "
                                                  "runs it fast; pure_bf16 keeps the weights in bf16."),
                           "zh": ("计算类型", "是否使用混合精度：auto 在硬件支持时使用 bf16；pure_bf16 将权重本身保存为 bf16。")},
    "train.per_device_train_batch_size": {"en": ("Batch size", "Samples per device per step."),
                                          "zh": ("批处理大小", "每个设备每步处理的样本数。")},
    "train.gradient_accumulation_steps": {"en": ("Gradient accumulation", "Steps per optimizer update."),
                                          "zh": ("梯度累积", "每次参数更新累积的步数。")},
    "train.lr_scheduler_type": {"en": ("LR scheduler", "Learning rate schedule."),
                                "zh": ("学习率调节器", "学习率的变化方式。")},
    "data.val_size": {"en": ("Val size", "Share of samples held out for validation; its loss joins the loss plot."),
                      "zh": ("验证集比例", "验证集占全部样本的比例；验证损失显示在损失曲线上。")},
    "train.max_grad_norm": {"en": ("Maximum gradient norm", "Norm for gradient clipping."),
                            "zh": ("最大梯度范数", "用于梯度裁剪的范数。")},
    "train.warmup_steps": {"en": ("Warmup steps", "Number of steps used for warmup."),
                           "zh": ("预热步数", "学习率预热采用的步数。")},
    "train.optim": {"en": ("Optimizer", "The optimizer to use; the 8-bit ones need bitsandbytes and a GPU."),
                    "zh": ("优化器", "使用的优化器；8 比特优化器需要 bitsandbytes 和 GPU。")},
    "train.seed": {"en": ("Seed", "Random seed for training."), "zh": ("随机种子", "训练使用的随机种子。")},
    # train tab: extra
    "train.logging_steps": {"en": ("Logging steps", "Number of steps between two logs."),
                            "zh": ("日志间隔", "每两次日志输出间的更新步数。")},
    "train.save_steps": {"en": ("Save steps", "Number of steps between two checkpoints."),
                         "zh": ("保存间隔", "每两次断点保存间的更新步数。")},
    "train.neftune_noise_alpha": {"en": ("NEFTune alpha", "Magnitude of noise added to embedding vectors (0: off; 5 "
                                                          "is typical)."),
                                  "zh": ("NEFTune 噪声参数", "嵌入向量所添加的噪声大小（0 表示关闭，常用 5）。")},
    "data.packing": {"en": ("Pack sequences", "Pack several samples into one row (pre-training and SFT); attention "
                                              "stays inside each sample."),
                     "zh": ("序列打包", "将多个样本打包为一行（仅预训练和 SFT）；注意力不跨越样本。")},
    "data.train_on_prompt": {"en": ("Train on prompt", "Disable the label mask on the prompt (only for SFT)."),
                             "zh": ("学习提示词", "不在提示词的部分添加掩码（仅适用于 SFT）。")},
    "data.mask_history": {"en": ("Mask history", "Train on the last turn only (only for SFT)."),
                          "zh": ("不学习历史对话", "仅学习最后一轮对话（仅适用于 SFT）。")},
    "data.enable_thinking": {"en": ("Enable thinking", "Reasoning models (templates with `<think>`): data keeps its "
                                                       "reasoning, answers without it learn the template's empty think "
                                                       "block. Off: reasoning is dropped and the empty block is part of "
                                                       "the prompt."),
                             "zh": ("启用思考模式", "推理模型（模板含 `<think>`）：保留数据中的思考过程，没有思考过程的回答学习模板的"
                                              "空思考块。关闭时：丢弃思考过程，空思考块作为提示词的一部分。")},
    "train.report_to": {"en": ("Enable external logger", "Also log to TensorBoard, wandb, MLflow, Trackio or SwanLab "
                                                         "(keys such as WANDB_API_KEY come from the environment). "
                                                         "Trackio and SwanLab (offline) log into the run folder."),
                        "zh": ("启用外部记录面板", "同时使用 TensorBoard、wandb、MLflow、Trackio 或 SwanLab 记录实验（WANDB_API_KEY "
                                                   "等密钥从环境变量读取）。Trackio 和 SwanLab（离线）记录在运行目录中。")},
    "train.extra_args": {"en": ("Extra arguments", "Extra arguments passed to the trainer in JSON format, only from "
                                                   f"this allow-list: {_ALLOWED}."),
                         "zh": ("额外参数", f"以 JSON 格式传递给训练器的额外参数，仅限以下参数：{_ALLOWED}。")},
    "train.resume": {"en": ("Resume", "When the output dir already holds checkpoints, continue from the last complete "
                                      "one."),
                     "zh": ("断点续训", "输出目录已有检查点时，从最后一个完整的检查点继续训练。")},
    "train.early_stopping_patience": {"en": ("Early stopping patience", "Stop when the watched metric has not "
                                                                        "improved for this many evaluations "
                                                                        "(validation loss: needs val size > 0) or probe "
                                                                        "rounds (probe score); 0: off."),
                                      "zh": ("早停耐心值", "所监测的指标连续这么多次评估（验证损失：需要验证集比例 > 0）或探针轮次"
                                                           "（探针得分）未改善时停止训练；0 表示关闭。")},
    "train.early_stopping_metric": {"en": ("Early stopping metric", "What early stopping watches: the validation "
                                                                    "loss, or the mean score of the scored probes "
                                                                    "(each save is a probe round)."),
                                    "zh": ("早停指标", "早停所监测的指标：验证损失，或带期望的探针的平均得分（每次保存都是一轮"
                                                       "探针）。")},
    # train tab: freeze
    "freeze.trainable_layers": {"en": ("Trainable layers", "Number of the last(+)/first(-) hidden layers to be set as "
                                                           "trainable."),
                                "zh": ("可训练层数", "最末尾（+）/最前端（-）可训练隐藏层的数量。")},
    "freeze.trainable_modules": {"en": ("Trainable modules", "Name(s) of trainable modules inside those layers; `all` "
                                                             "trains whole layers. Use commas to separate several."),
                                 "zh": ("可训练模块", "这些层中可训练模块的名称；`all` 表示整层训练。使用英文逗号分隔多个名称。")},
    "freeze.extra_modules": {"en": ("Extra modules (optional)", "Name(s) of modules apart from hidden layers to be set "
                                                                "as trainable, e.g. embed_tokens,norm."),
                             "zh": ("额外模块（非必填）", "除隐藏层以外的可训练模块名称，例如 embed_tokens,norm。")},
    # train tab: LoRA
    "lora.rank": {"en": ("LoRA rank", "The rank of LoRA matrices."), "zh": ("LoRA 秩", "LoRA 矩阵的秩大小。")},
    "lora.alpha": {"en": ("LoRA alpha", "LoRA scaling coefficient."), "zh": ("LoRA 缩放系数", "LoRA 缩放系数大小。")},
    "lora.dropout": {"en": ("LoRA dropout", "Dropout ratio of LoRA weights."),
                     "zh": ("LoRA 随机丢弃", "LoRA 权重随机丢弃的概率。")},
    "lora.loraplus_lr_ratio": {"en": ("LoRA+ LR ratio", "The LR ratio of the B matrices in LoRA (0: off; 16 is "
                                                        "typical)."),
                               "zh": ("LoRA+ 学习率比例", "LoRA+ 中 B 矩阵的学习率倍数（0 表示关闭，常用 16）。")},
    "lora.use_rslora": {"en": ("Use rslora", "Use the rank stabilization scaling factor for LoRA layer."),
                        "zh": ("使用 rslora", "对 LoRA 层使用秩稳定缩放方法。")},
    "lora.use_dora": {"en": ("Use DoRA", "Use weight-decomposed LoRA."), "zh": ("使用 DoRA", "使用权重分解的 LoRA。")},
    "lora.pissa_init": {"en": ("Use PiSSA", "Initialise the adapter from the principal singular vectors of the "
                                            "weights."),
                        "zh": ("使用 PiSSA", "用权重的主奇异向量初始化适配器。")},
    "lora.create_new_adapter": {"en": ("Create new adapter", "Create a new adapter with randomly initialized weight "
                                                             "upon the selected checkpoint."),
                                "zh": ("新建适配器", "在所选检查点上创建一个随机初始化后的新适配器。")},
    "lora.target": {"en": ("LoRA modules (optional)", "Name(s) of modules to apply LoRA; `all` for every linear "
                                                      "layer. Use commas to separate several."),
                    "zh": ("LoRA 作用模块（非必填）", "应用 LoRA 的模块名称；`all` 表示全部线性层。使用英文逗号分隔多个名称。")},
    "lora.additional_target": {"en": ("Additional modules (optional)", "Name(s) of modules apart from LoRA layers "
                                                                       "to be set as trainable, e.g. "
                                                                       "embed_tokens,lm_head."),
                               "zh": ("附加模块（非必填）", "除 LoRA 层以外的可训练模块名称，例如 embed_tokens,lm_head。")},
    # train tab: RLHF
    "rlhf.beta": {"en": ("Beta value", "Value of the beta parameter in the loss (DPO/KTO: how far the model may move "
                                       "from the reference; ORPO: weight of the odds-ratio term)."),
                  "zh": ("Beta 参数", "损失函数中 beta 超参数大小（DPO/KTO：模型偏离参考模型的程度；ORPO：几率比项的权重）。")},
    "rlhf.ftx": {"en": ("Ftx gamma", "The weight of SFT loss in the final loss (DPO only)."),
                 "zh": ("Ftx gamma", "损失函数中 SFT 损失的权重大小（仅 DPO）。")},
    "rlhf.loss_type": {"en": ("Loss type", "The type of the DPO loss function."),
                       "zh": ("损失类型", "DPO 损失函数的类型。")},
    "rlhf.kto_loss_type": {"en": ("KTO loss type", "The type of the KTO loss function."),
                           "zh": ("KTO 损失类型", "KTO 损失函数的类型。")},
    "rlhf.desirable_weight": {"en": ("Desirable weight", "KTO: weight of the losses on desirable answers."),
                              "zh": ("期望样本权重", "KTO：期望回答的损失权重。")},
    "rlhf.undesirable_weight": {"en": ("Undesirable weight", "KTO: weight of the losses on undesirable answers."),
                                "zh": ("非期望样本权重", "KTO：非期望回答的损失权重。")},
    "rlhf.reward_model": {"en": ("Reward model", "PPO: the reward modeling run of this model (or one of its "
                                                 "checkpoints) that scores the sampled answers."),
                          "zh": ("奖励模型", "PPO 训练中为采样回答打分的奖励模型：本模型的奖励模型训练结果或其检查点。")},
    "rlhf.ppo_score_norm": {"en": ("Score norm", "PPO: normalize the reward scores by their running mean and "
                                                 "standard deviation."),
                            "zh": ("归一化分数", "PPO 训练中按奖励分数的滑动均值和标准差进行归一化。")},
    "rlhf.ppo_whiten_rewards": {"en": ("Whiten rewards", "PPO: whiten the per-token rewards of each batch before "
                                                         "the advantages are estimated."),
                                "zh": ("白化奖励", "PPO 训练中在估计优势之前将每批的逐词元奖励做白化处理。")},
    "rlhf.ppo_epochs": {"en": ("PPO epochs", "PPO: optimizer steps on each batch of sampled answers."),
                        "zh": ("PPO 轮数", "PPO 训练中每批采样回答上的优化步数。")},
    "rlhf.ppo_max_new_tokens": {"en": ("Max new tokens", "PPO: longest answer sampled for each prompt, in tokens."),
                                "zh": ("最大生成长度", "PPO 训练中每个提示采样回答的最大词元数。")},
    # train tab: memory-saving optimizers (full / freeze training)
    "galore.use_galore": {"en": ("Use GaLore", "Use the GaLore optimizer: "
                                               "gradients projected to a low rank, smaller optimizer states. Full or "
                                               "freeze method; needs `pip install galore-torch==1.0`."),
                          "zh": ("使用 GaLore", "使用 GaLore 优化器：梯度投影到低秩，"
                                              "优化器状态更小。适用于全参数或部分参数微调；需要 `pip install galore-torch==1.0`。")},
    "galore.rank": {"en": ("GaLore rank", "The rank of GaLore gradients."), "zh": ("GaLore 秩", "GaLore 梯度的秩大小。")},
    "galore.update_interval": {"en": ("GaLore update interval", "Number of steps to update the GaLore projection."),
                               "zh": ("GaLore 更新间隔", "相邻两次投影更新的步数。")},
    "galore.scale": {"en": ("GaLore scale", "GaLore scaling coefficient."), "zh": ("GaLore 缩放系数", "GaLore 缩放系数大小。")},
    "galore.target": {"en": ("GaLore modules", "Name(s) of modules to apply GaLore. Use commas to separate multiple "
                                               "modules; `all`: every linear layer but the output layer."),
                      "zh": ("GaLore 作用模块", "应用 GaLore 的模块名称。使用英文逗号分隔多个名称；`all`：除输出层外的所有线性层。")},
    "apollo.use_apollo": {"en": ("Use APOLLO", "Use the APOLLO optimizer: "
                                               "AdamW-like training with optimizer states of SGD's size. Full or "
                                               "freeze method; needs `pip install apollo-torch==1.0.3`."),
                          "zh": ("使用 APOLLO", "使用 APOLLO 优化器：接近 AdamW 的效果，"
                                              "优化器状态只有 SGD 的大小。适用于全参数或部分参数微调；需要 "
                                              "`pip install apollo-torch==1.0.3`。")},
    "apollo.rank": {"en": ("APOLLO rank", "The rank of APOLLO gradients."), "zh": ("APOLLO 秩", "APOLLO 梯度的秩大小。")},
    "apollo.update_interval": {"en": ("APOLLO update interval", "Number of steps to update the APOLLO projection."),
                               "zh": ("APOLLO 更新间隔", "相邻两次投影更新的步数。")},
    "apollo.scale": {"en": ("APOLLO scale", "APOLLO scaling coefficient."), "zh": ("APOLLO 缩放系数", "APOLLO 缩放系数大小。")},
    "apollo.target": {"en": ("APOLLO modules", "Name(s) of modules to apply APOLLO. Use commas to separate multiple "
                                               "modules; `all`: every linear layer but the output layer."),
                      "zh": ("APOLLO 作用模块", "应用 APOLLO 的模块名称。使用英文逗号分隔多个名称；`all`：除输出层外的所有线性层。")},
    "badam.use_badam": {"en": ("Use BAdam", "Enable the BAdam optimizer: one block "
                                            "trained at a time. Full method; needs `pip install badam==1.4`."),
                        "zh": ("使用 BAdam", "使用 BAdam 优化器：每次只训练一个块。"
                                            "适用于全参数微调；需要 `pip install badam==1.4`。")},
    "badam.mode": {"en": ("BAdam mode", "Whether to use layer-wise or ratio-wise BAdam optimizer."),
                   "zh": ("BAdam 模式", "使用 layer-wise 或 ratio-wise BAdam 优化器。")},
    "badam.switch_mode": {"en": ("Switch mode", "The strategy of picking block to update for layer-wise BAdam."),
                          "zh": ("切换策略", "Layer-wise BAdam 优化器的块切换策略。")},
    "badam.switch_interval": {"en": ("Switch interval", "Number of steps to update the block for layer-wise BAdam "
                                                        "(ratio-wise: steps before a new share)."),
                              "zh": ("切换频率", "Layer-wise BAdam 优化器的块切换频率（ratio-wise：更换更新部分的步数）。")},
    "badam.update_ratio": {"en": ("Update ratio", "The ratio of the update for ratio-wise BAdam."),
                           "zh": ("Block 更新比例", "Ratio-wise BAdam 优化器的更新比例。")},
    "grpo.rewards": {"en": ("Rewards", "Verifiable rewards each sampled completion is scored with, summed: accuracy, "
                                       "format, length."),
                     "zh": ("奖励函数", "为每个采样回答打分的可验证奖励，分数相加：准确率、格式、长度。")},
    "grpo.format_regex": {"en": ("Format regex", "Format reward: 1 when the whole completion matches this regular "
                                                 "expression (Python syntax; . also matches line breaks), else 0."),
                          "zh": ("格式正则表达式", "格式奖励：整个回答与此正则表达式完全匹配时为 1，否则为 0"
                                                   "（Python 语法；. 也匹配换行）。")},
    "grpo.length_target": {"en": ("Target length", "Length reward: 1 for completions of this many tokens, falling "
                                                   "to 0 at none or twice as many."),
                           "zh": ("目标长度", "长度奖励：回答恰好为此 token 数时为 1，为 0 个或两倍长时降到 0。")},
    "grpo.num_generations": {"en": ("Generations per prompt", "Completions sampled for each prompt and compared "
                                                              "with each other. Must divide batch size x gradient "
                                                              "accumulation."),
                             "zh": ("每个提示的生成数", "每个提示采样的回答数，回答之间相互比较。须能整除批处理大小 × "
                                                        "梯度累积。")},
    "grpo.max_completion_length": {"en": ("Max completion length", "Longest sampled completion, in tokens."),
                                   "zh": ("最大回答长度", "采样回答的最大 token 数。")},
    "grpo.temperature": {"en": ("Temperature", "Sampling temperature of the completions (higher: more varied "
                                               "groups)."),
                         "zh": ("温度系数", "采样回答的温度（越高，同组回答越多样）。")},
    "grpo.beta": {"en": ("KL beta", "KL penalty keeping the model near where it started (0: none, and no reference "
                                    "model is kept)."),
                  "zh": ("KL 系数 beta", "使模型贴近初始模型的 KL 惩罚（0：不惩罚，也不保留参考模型）。")},
    # train tab: devices and nodes
    "distributed.devices": {"en": ("Devices", "Accelerators to train on, numbered as nvidia-smi or npu-smi lists "
                                              "them; ticking several launches the run through torchrun, one process "
                                              "per device. None ticked: the first one only, even on a machine with "
                                              "several."),
                            "zh": ("运算设备", "用于训练的加速卡，编号与 nvidia-smi 或 npu-smi 的列表一致；勾选多张时通过 torchrun "
                                           "启动，每张卡一个进程。不勾选则只使用第一张，即使机器上有多张。")},
    "distributed.nproc_per_node": {"en": ("Processes per node", "0: one per ticked device; set it on a CPU to run "
                                                                "several processes."),
                                   "zh": ("每节点进程数", "0 表示每张勾选的设备一个进程；在 CPU 上可设置以运行多个进程。")},
    "distributed.nnodes": {"en": ("Number of nodes", "Machines taking part in the run. Only the rank-0 node saves "
                                                     "checkpoints: to resume, every node needs saves/ on a shared "
                                                     "filesystem."),
                           "zh": ("节点数量", "参与训练的机器数量。只有 0 号节点保存检查点：要断点续训，所有节点的 saves/ "
                                            "须位于共享文件系统上。")},
    "distributed.node_rank": {"en": ("Node rank", "This machine's rank among the nodes (0 for the master)."),
                              "zh": ("节点序号", "本机在所有节点中的序号（主节点为 0）。")},
    "distributed.master_addr": {"en": ("Master address", "Address of the node with rank 0 (with several nodes, one "
                                                         "the others can reach)."),
                                "zh": ("主节点地址", "序号为 0 的节点的地址（多节点时须是其他节点能访问到的地址）。")},
    "distributed.master_port": {"en": ("Master port", "Port of the rendezvous on the master node."),
                                "zh": ("主节点端口", "主节点上用于会合的端口。")},
    "distributed.deepspeed": {"en": ("DeepSpeed stage", "ZeRO stage: 2 shards optimizer states across processes, 3 the "
                                                        "weights too. Needs the deepspeed package; CUDA and NPU, or "
                                                        "the CPU (gloo) for a dry run."),
                              "zh": ("DeepSpeed stage", "ZeRO stage：2 在各进程间切分优化器状态，3 连权重也切分。需要安装 "
                                                        "deepspeed；用于 CUDA 和 NPU，也可在 CPU（gloo）上试跑。")},
    "distributed.offload": {"en": ("Enable offload", "Enable DeepSpeed offload (slows training down)."),
                            "zh": ("使用 offload", "使用 DeepSpeed offload（会减慢速度）。")},
    # other tabs
    "eval.batch_size": {"en": ("Batch size", "Samples per evaluation batch."), "zh": ("批处理大小", "每批评估的样本数。")},
    "eval.predict": {"en": ("Save predictions", "Generate answers and score ROUGE / BLEU; for reasoning models, the "
                                                "answer without its thinking."),
                     "zh": ("保存预测结果", "生成回答并计算 ROUGE / BLEU；推理模型只评估去掉思考过程后的回答。")},
    "eval.max_new_tokens": {"en": ("Max new tokens", "Longest generated answer."), "zh": ("最大生成长度", "生成回答的最大 token 数。")},
    "eval.top_p": {"en": ("Top-p", "Nucleus sampling (temperature > 0)."), "zh": ("Top-p 采样值", "核采样阈值（温度 > 0 时）。")},
    "eval.temperature": {"en": ("Temperature", "0 decodes greedily: reproducible scores."),
                         "zh": ("温度系数", "0 表示贪心解码，得分可复现。")},
    "eval.compare_base": {"en": ("Compare with base model", "Also score the base model on the same samples."),
                          "zh": ("与基础模型对比", "同时在相同样本上评估基础模型。")},
    "export.export_dir": {"en": ("Export dir", "Folder name under exports/ for the merged model."),
                          "zh": ("导出目录", "合并后模型在 exports/ 下的文件夹名。")},
    "export.max_shard_size_gb": {"en": ("Max shard size (GB)", "Largest safetensors file."),
                                 "zh": ("最大分块大小（GB）", "单个 safetensors 文件的最大大小。")},
    "export.export_dtype": {"en": ("Export dtype", "auto keeps the base model's dtype."),
                            "zh": ("导出精度", "auto 保持基础模型的精度。")},
    "export.device": {"en": ("Export device", "Device used for merging."), "zh": ("导出设备", "合并时使用的设备。")},
    "export.export_quantization_bit": {
        "en": ("Export quantization bit.", "Quantizing the exported model with GPTQ (gptqmodel; needs an NVIDIA GPU)."),
        "zh": ("导出量化等级", "用 GPTQ 量化导出模型（gptqmodel；需要 NVIDIA GPU）。")},
    "export.export_quantization_dataset": {
        "en": ("Export quantization dataset", "The calibration dataset used for quantization."),
        "zh": ("导出量化数据集", "量化过程中使用的校准数据集。")},
    "export.quantization_dataset_dir": {
        "en": ("Quantization data dir", "Folder whose dataset_info.json lists the calibration dataset."),
        "zh": ("量化数据目录", "其 dataset_info.json 列出校准数据集的文件夹。")},
    "export.export_gguf": {
        "en": ("GGUF export", "Also write one GGUF file of this type (llama.cpp, Ollama, LM Studio) with an Ollama "
                              "Modelfile; llama and qwen2 models."),
        "zh": ("导出 GGUF", "另外写出一个该类型的 GGUF 文件（llama.cpp、Ollama、LM Studio）及 Ollama Modelfile；"
                          "支持 llama 与 qwen2 模型。")},
    "export.export_hub": {"en": ("Hub to push to", "Token from HF_TOKEN / MODELSCOPE_API_TOKEN in the environment."),
                          "zh": ("上传到的模型库", "令牌取自环境变量 HF_TOKEN / MODELSCOPE_API_TOKEN。")},
    "export.export_hub_model_id": {
        "en": ("HF Hub ID (optional)", "Repo ID (owner/name) for uploading the exported model, model card included."),
        "zh": ("HF Hub ID（非必填）", "用于上传导出模型（含模型卡片）的仓库 ID（owner/name）。")},
    "export.export_hub_private": {"en": ("Private repository", "Create the hub repository as private."),
                                  "zh": ("私有仓库", "将模型库仓库创建为私有。")},
    "data.identity_name": {"en": ("Assistant name", "Fills {{name}} in identity data."),
                           "zh": ("助手名称", "填入身份数据中的 {{name}}。")},
    "data.identity_author": {"en": ("Assistant author", "Fills {{author}} in identity data."),
                             "zh": ("助手作者", "填入身份数据中的 {{author}}。")},
}

# Choice values with names of their own: key -> {value: {lang: label}}
CHOICE_TEXT: dict[str, dict[str, dict[str, str]]] = {
    "model.hub": {"huggingface": {"en": "Hugging Face", "zh": "Hugging Face"},
                  "modelscope": {"en": "ModelScope", "zh": "魔搭社区 ModelScope"},
                  "modelers": {"en": "Modelers (openMind)", "zh": "魔乐社区 Modelers"}},
    "export.export_hub": {"huggingface": {"en": "Hugging Face", "zh": "Hugging Face"},
                          "modelscope": {"en": "ModelScope", "zh": "魔搭社区 ModelScope"}},
    "train.stage": {"pt": {"en": "Pre-Training", "zh": "预训练"}, "sft": {"en": "Supervised Fine-Tuning", "zh": "指令监督微调"},
                    "rm": {"en": "Reward Modeling", "zh": "奖励模型训练"}, "dpo": {"en": "DPO", "zh": "DPO"},
                    "orpo": {"en": "ORPO", "zh": "ORPO"}, "kto": {"en": "KTO", "zh": "KTO"},
                    "ppo": {"en": "PPO", "zh": "PPO"}, "grpo": {"en": "GRPO", "zh": "GRPO"}},
    "train.early_stopping_metric": {"eval_loss": {"en": "Validation loss", "zh": "验证损失"},
                                    "probe_score": {"en": "Probe score", "zh": "探针得分"}},
    "train.probe_reference_metric": {"rouge-l": {"en": "ROUGE-L", "zh": "ROUGE-L"},
                                     "bleu-4": {"en": "BLEU-4", "zh": "BLEU-4"}},
    "grpo.rewards": {"accuracy": {"en": "Accuracy (matches the answer)", "zh": "准确率（与参考答案一致）"},
                     "format": {"en": "Format (matches the regex)", "zh": "格式（匹配正则表达式）"},
                     "length": {"en": "Length (near the target)", "zh": "长度（接近目标长度）"}},
}

MESSAGES: dict[str, dict[str, str]] = {
    # probe questions
    "group_probes": {"en": "Probes", "zh": "探针"},
    "probe_caption": {"en": "The model's answers to the probe questions as training goes on (greedy decoding).",
                      "zh": "随着训练进行，模型对探针问题的回答（贪心解码）。"},
    "probe_step": {"en": "Step", "zh": "步数"},
    # hardware panel
    "hw_title": {"en": "Hardware", "zh": "硬件"},
    "hw_cpu_name": {"en": "CPU", "zh": "CPU"},
    "hw_cpu": {"en": "CPU: {pct}% of {cores} cores", "zh": "CPU：{cores} 核，使用 {pct}%"},
    "hw_ram_name": {"en": "Memory", "zh": "内存"},
    "hw_ram": {"en": "Memory: {used} of {total} in use; TuneBoard and its jobs {app}",
               "zh": "内存：已用 {used} / {total}；TuneBoard 及其任务占用 {app}"},
    "hw_device_memory": {"en": "{used} of {total} memory", "zh": "显存 {used} / {total}"},
    "hw_device_busy": {"en": ", {pct}% busy", "zh": "，利用率 {pct}%"},
    "hw_no_devices": {"en": "No GPU or NPU found (nvidia-smi and npu-smi are not installed or list none).",
                      "zh": "未发现 GPU 或 NPU（未安装 nvidia-smi 与 npu-smi，或它们未列出设备）。"},
    # memory estimate (webui/memory_panel.py)
    "mem_title": {"en": "Memory estimate", "zh": "显存估算"},
    "mem_train_head": {"en": "Estimated peak memory per device: {total} · devices: {devices}",
                       "zh": "预计每个设备的峰值显存：{total} · 设备数：{devices}"},
    "mem_chat_head": {"en": "Loading this model for chat needs about {total}", "zh": "加载此模型用于对话约需 {total}"},
    "mem_of_device": {"en": "{total} of {have} · {device}", "zh": "{total} / {have} · {device}"},
    "mem_train_parts": {"en": "Weights {weights} · gradients and optimizer states {trainable} · activations "
                              "{activations} · overhead {overhead}",
                        "zh": "权重 {weights} · 梯度与优化器状态 {trainable} · 激活值 {activations} · 其他开销 {overhead}"},
    "mem_chat_parts": {"en": "Weights {weights} · key/value cache and working memory for {tokens} tokens {activations} · "
                             "overhead {overhead}",
                       "zh": "权重 {weights} · {tokens} 个词元的 KV 缓存与工作内存 {activations} · 其他开销 {overhead}"},
    "mem_assumed": {"en": "Assumes the longest batch: {tokens} tokens per device (batch size × cutoff length); {params} "
                          "parameters, {trained} of them trained.",
                    "zh": "按最长的批次估算：每个设备 {tokens} 个词元（批处理大小 × 截断长度）；参数量 {params}，其中训练 "
                          "{trained} 个。"},
    "mem_note_rough_model": {"en": "This model's config.json is not on disk yet: its shape is guessed from its size, so "
                                   "the estimate is rougher.",
                             "zh": "此模型的 config.json 尚未下载：其结构按参数量推测，估算较粗略。"},
    "mem_note_accumulation_no_effect": {"en": "Gradient accumulation does not raise the peak: the gradients are kept "
                                              "in any case.",
                                        "zh": "梯度累积不会提高峰值：梯度本来就要保存。"},
    "mem_note_pairs_double": {"en": "This stage feeds chosen and rejected answers together: twice the tokens of a batch.",
                              "zh": "此阶段同时输入被选与被拒的回答：一个批次的词元数翻倍。"},
    "mem_note_checkpointing": {"en": "Gradient checkpointing is on: each layer keeps only its input and is recomputed "
                                     "in backward.",
                               "zh": "已开启梯度检查点：每层只保存输入，反向传播时重新计算。"},
    "mem_fits": {"en": "Fits: {pct}% of {device}.", "zh": "可以放下：占{device}的 {pct}%。"},
    "mem_tight": {"en": "Tight: {pct}% of {device}. A batch longer than assumed or another program could run out of "
                        "memory.",
                  "zh": "偏紧：占{device}的 {pct}%。比预计更长的批次或其他程序可能导致显存不足。"},
    "mem_too_big": {"en": "Does not fit: about {need} needed, {have} on {device}.",
                    "zh": "放不下：约需 {need}，{device} 只有 {have}。"},
    "mem_fix_intro": {"en": "Changes that would make it fit:", "zh": "以下改动可以放下："},
    "mem_fix": {"en": "{change}: {total}", "zh": "{change}：{total}"},
    "mem_fix_combined": {"en": "{changes}, all together: {total}", "zh": "{changes}，同时使用：{total}"},
    "mem_no_fix": {"en": "Neither QLoRA, a smaller batch, gradient checkpointing, ZeRO-3 nor more devices makes it fit: "
                         "choose a smaller model or a device with more memory.",
                   "zh": "QLoRA、更小的批次、梯度检查点、ZeRO-3 或更多设备都不足以放下：请选择更小的模型或显存更大的设备。"},
    "mem_change_qlora": {"en": "QLoRA (LoRA on 4-bit base weights)", "zh": "QLoRA（在 4 比特基础权重上训练 LoRA）"},
    "mem_change_batch": {"en": "batch size {batch} with gradient accumulation {accumulation} (the same effective batch)",
                         "zh": "批处理大小 {batch}，梯度累积 {accumulation}（有效批次不变）"},
    "mem_change_checkpointing": {"en": "gradient checkpointing (`{example}` in Extra arguments)",
                                 "zh": "梯度检查点（在额外参数中填写 `{example}`）"},
    "mem_change_zero3": {"en": "DeepSpeed ZeRO-3", "zh": "使用 DeepSpeed ZeRO-3"},
    "mem_change_zero3_offload": {"en": "DeepSpeed ZeRO-3 with CPU offload", "zh": "DeepSpeed ZeRO-3 并卸载到 CPU"},
    "mem_change_devices": {"en": "{devices} devices with DeepSpeed ZeRO-3", "zh": "{devices} 个设备并使用 DeepSpeed ZeRO-3"},
    "mem_cpu_device": {"en": "the CPU's free memory", "zh": "CPU 可用内存"},
    "mem_ckpt_auto": {"en": "Start turns gradient checkpointing on by itself on this device: without it the run would "
                            "take about {need} of {have}. The estimate above is with it; "
                            "{off} in Extra arguments keeps it off.",
                      "zh": "在此设备上，开始训练时会自动开启梯度检查点：不开启时约需 {need}（共 {have}）。上面的估算已按开启计算；"
                            "在额外参数中填写 {off} 可保持关闭。"},
    "mem_unknown_model": {"en": "No memory estimate: {model} is neither on disk nor in the model list.",
                          "zh": "无法估算显存：{model} 既不在本地，也不在模型列表中。"},
    "mem_invalid": {"en": "No memory estimate until the form's values are valid.", "zh": "表单中的参数有效后才能估算显存。"},
    # tabs and groups
    "tab_train": {"en": "Train", "zh": "训练"},
    "tab_eval": {"en": "Evaluate & Predict", "zh": "评估&预测"},
    "tab_chat": {"en": "Chat", "zh": "对话"},
    "tab_export": {"en": "Export", "zh": "导出"},
    "group_extra": {"en": "Extra configurations", "zh": "其它参数设置"},
    "group_advanced": {"en": "Advanced configurations", "zh": "高级设置"},
    "group_lora": {"en": "LoRA configurations", "zh": "LoRA 参数设置"},
    "group_freeze": {"en": "Freeze tuning configurations", "zh": "部分参数微调设置"},
    "group_identity": {"en": "Identity placeholders", "zh": "身份占位符"},
    "group_rlhf": {"en": "RLHF configurations", "zh": "RLHF 参数设置"},
    "group_galore": {"en": "GaLore configurations", "zh": "GaLore 参数设置"},
    "group_apollo": {"en": "APOLLO configurations", "zh": "APOLLO 参数设置"},
    "group_badam": {"en": "BAdam configurations", "zh": "BAdam 参数设置"},
    "group_grpo": {"en": "GRPO configurations", "zh": "GRPO 参数设置"},
    "group_devices": {"en": "Devices and nodes", "zh": "设备与节点设置"},
    "devices_cpu_only": {"en": "CPU only: no GPU or NPU found.", "zh": "仅 CPU：未找到 GPU 或 NPU。"},
    "title": {"en": "TuneBoard — fine-tune LLMs in your browser", "zh": "TuneBoard — 在浏览器中微调大模型"},
    # top bar
    "lang": {"en": "Language", "zh": "语言"},
    "model_name": {"en": "Model name", "zh": "模型名称"},
    "custom_model": {"en": "Custom", "zh": "自定义"},  # the model name choice for a path of one's own
    "model_demo": {"en": "built-in demo, {size}", "zh": "内置演示，{size}"},  # the demo's size in the model list
    # model hub: where files come from and go; a catalogue model missing from the chosen hub
    "hub_info": {"en": "{hub}: downloads from {endpoint}; files go to {folder}.",
                 "zh": "{hub}：从 {endpoint} 下载；文件保存在 {folder}。"},
    "hub_not_here": {"en": "{model} is not on {hub}; it is on {hubs}. Choose one of those as the model hub, or enter a "
                           "local folder as the model path.",
                     "zh": "{hub} 上没有 {model}；它在 {hubs} 上。请选择其中之一作为模型下载源，或在模型路径中填写本地文件夹。"},
    "hub_client_missing": {"en": "The client library of {hub} ({package}) is not installed, so nothing can be downloaded "
                                 "from it: run `bash scripts/install.sh`.",
                           "zh": "{hub} 的客户端库（{package}）未安装，无法从该下载源下载：请运行 `bash scripts/install.sh`。"},
    # checkpoint dropdown: "<run> / checkpoint-N (step N, loss x, best)"
    "ckpt_step": {"en": "step {step}", "zh": "步数 {step}"},
    "ckpt_loss": {"en": "loss {loss:.4g}", "zh": "损失 {loss:.4g}"},
    "ckpt_eval_loss": {"en": "eval loss {loss:.4g}", "zh": "验证损失 {loss:.4g}"},
    "ckpt_best": {"en": "best by loss", "zh": "损失最优"},
    "ckpt_probes": {"en": "probes {score:.1f}", "zh": "探针 {score:.1f}"},
    "ckpt_best_probe": {"en": "best by probes", "zh": "探针最优"},
    "list_sep": {"en": ", ", "zh": "，"},
    "change_sep": {"en": "; ", "zh": "；"},
    "gradio_warning": {"en": "Warning", "zh": "警告"},
    "gradio_error": {"en": "Error", "zh": "错误"},
    "gradio_info": {"en": "Info", "zh": "提示"},
    "gradio_success": {"en": "Success", "zh": "成功"},
    "gradio_api": {"en": "Use via API", "zh": "通过 API 使用"},
    "gradio_settings": {"en": "Settings", "zh": "设置"},
    "log_step": {"en": "Step {step} / {total}", "zh": "步数 {step} / {total}"},
    "log_loss": {"en": "loss {value}", "zh": "损失 {value}"},
    "log_first_loss": {"en": "loss {value} (first batch, before any update)", "zh": "损失 {value}（第一个批次，尚未更新）"},
    "log_eval_loss": {"en": "eval loss {value}", "zh": "验证损失 {value}"},
    "log_lr": {"en": "learning rate {value}", "zh": "学习率 {value}"},
    "log_reward": {"en": "reward {value}", "zh": "奖励 {value}"},
    "log_reward_std": {"en": "reward spread {value}", "zh": "奖励标准差 {value}"},
    "log_kl": {"en": "KL {value}", "zh": "KL 散度 {value}"},
    "log_speed": {"en": "{value} tokens/s", "zh": "{value} 词元/秒"},
    "log_trained": {"en": "Training done: average loss {loss} in {runtime}", "zh": "训练完成：平均损失 {loss}，用时 {runtime}"},
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
    "grpo_preset": {"en": "GRPO demo preset", "zh": "GRPO 演示预设"},
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
    "train_finished": {"en": "Training finished", "zh": "训练完毕"},
    "train_stopped": {"en": "Training stopped; the weights so far were saved.", "zh": "训练已中断，已保存当前权重。"},
    "train_failed": {"en": "Training failed: {error}", "zh": "训练失败：{error}"},
    "training_started": {"en": "Training started: {path}", "zh": "训练开始：{path}"},
    "run_loading": {"en": "Loading model and data…", "zh": "正在加载模型与数据……"},
    "run_downloading": {"en": "Downloading the model. The job downloads in its own process: closing this page does not "
                              "stop it, Stop does (the files already downloaded are kept for the next try).",
                        "zh": "正在下载模型。下载在任务自己的进程中进行：关闭本页面不会中断下载，点击“中断”才会停止"
                              "（已下载的文件会保留，下次继续）。"},
    "download_starting": {"en": "Downloading {model} from {hub}: listing its files…",
                          "zh": "正在从 {hub} 下载 {model}：正在获取文件列表……"},
    "download_progress": {"en": "Downloading {model} from {hub} · {file} (file {n} of {count}) · {done} of {total} · "
                                "{rate}/s · {eta} left",
                          "zh": "正在从 {hub} 下载 {model} · {file}（第 {n} 个文件，共 {count} 个）· {done} / {total} · "
                                "{rate}/s · 剩余 {eta}"},
    "download_bar": {"en": "Model download", "zh": "模型下载"},
    "download_progress_no_rate": {"en": "Downloading {model} from {hub} · {file} (file {n} of {count}) · {done} of "
                                        "{total}",
                                  "zh": "正在从 {hub} 下载 {model} · {file}（第 {n} 个文件，共 {count} 个）· {done} / "
                                        "{total}"},
    "run_running": {"en": "Running. You may close this page: the run goes on, and reopening the page shows it.",
                    "zh": "运行中。可以关闭此页面：任务会继续运行，重新打开页面即可看到。"},
    "stop_sent": {"en": "Stopping after the current step…", "zh": "将在当前步结束后中断……"},
    "nothing_running": {"en": "Nothing is running.", "zh": "当前没有正在进行的任务。"},
    "run_in_use": {"en": "A run in {path} is still queued or running; choose another output dir.",
                   "zh": "{path} 中的任务仍在排队或运行，请换一个输出目录。"},
    "continue_adapter": {"en": "Continue from this checkpoint", "zh": "在此检查点上继续训练"},
    "adapter_continues": {"en": "Start continues from adapter **{adapter}**: the new run trains on top of it.",
                          "zh": "点击开始将在适配器 **{adapter}** 之上继续训练：新的训练叠加在它上面。"},
    "adapter_not_used": {"en": "Start trains on the base model: the checkpoint chosen above (**{adapter}**) is for "
                               "Evaluate, Chat and Export. Tick the box to continue from it instead.",
                         "zh": "点击开始将从基础模型训练：上方选择的检查点（**{adapter}**）用于评估、对话和导出。"
                               "勾选右侧选项即可在它之上继续训练。"},
    "run_reattached": {"en": "Showing run **{run}** ({state}): the progress, curve and log are its own, and the form "
                             "holds its settings, read from `{path}`. Give a new Output dir to start another run.",
                       "zh": "正在显示任务 **{run}**（{state}）：进度、曲线和日志都属于它，表单中是它的设置（读取自 "
                             "`{path}`）。如需开始新的训练，请换一个输出目录。"},
    "chat_form_differs": {"en": "The top bar names a different model: {form}. Press Load model to chat with it "
                                "instead.",
                          "zh": "顶栏选择的是另一个模型：{form}。点击“加载模型”即可改用它对话。"},
    "queue_added": {"en": "The device is busy: queued behind {ahead} job(s). It starts by itself when the device "
                          "is free, even if this page is closed; Stop removes it from the queue.",
                    "zh": "设备正忙：排在 {ahead} 个任务之后。设备空闲时自动开始（关闭页面也不影响）；"
                          "点击中断可将其移出队列。"},
    "chat_unloaded_for_run": {"en": "Chat's model ({model}, on {device}) was unloaded: this job needs that device's "
                                    "memory. Load it again in Chat when the job has ended.",
                              "zh": "已卸载对话页的模型（{model}，位于 {device}）：该任务需要这块设备的显存。任务结束后可在对话页"
                                    "重新加载。"},
    "chat_device_busy": {"en": "Cannot load the model on {device} now: the job {run} is using that device or waiting "
                               "for it, and both would share its memory. Load the model when the job has ended (Chat "
                               "waits for the device queue like any job), or choose another device.",
                         "zh": "现在无法在 {device} 上加载模型：任务 {run} 正在使用或等待这块设备，二者会争用其显存。"
                               "请在任务结束后再加载（对话与其他任务一样遵循设备队列），或选择其他设备。"},
    "ckpt_auto_fits": {"en": "Gradient checkpointing is off: the run fits in the device's memory without it (about "
                             "{need} of {have}).",
                       "zh": "梯度检查点已关闭：不开启也能放入设备显存（约 {need} / {have}）。"},
    "ckpt_auto_tight": {"en": "Gradient checkpointing is on: without it the run would take about {need} of the "
                              "device's {have}, too close to the limit. It recomputes activations in backward (slower); "
                              "{off} in Extra arguments turns it off.",
                        "zh": "梯度检查点已开启：不开启时约需 {need}（设备共 {have}），过于接近上限。它会在反向传播时重新"
                              "计算激活值（更慢）；在额外参数中填写 {off} 可关闭。"},
    "ckpt_auto_too_big": {"en": "Gradient checkpointing is on: without it the run would need about {need}, more than "
                                "the device's {have}. {off} in Extra arguments turns it "
                                "off.",
                          "zh": "梯度检查点已开启：不开启时约需 {need}，超过设备的 {have}。在额外参数中填写 "
                                "{off} 可关闭。"},
    "ckpt_auto_unknown": {"en": "Gradient checkpointing is on: this model's memory need or the device's memory is not "
                                "known here, and on an accelerator that is the safe side (LlamaBoard's default). "
                                "{off} in Extra arguments turns it off.",
                          "zh": "梯度检查点已开启：此处无法得知该模型的显存需求或设备显存，在加速器上开启更稳妥（与 LlamaBoard "
                                "默认一致）。在额外参数中填写 {off} 可关闭。"},
    "queue_waiting": {"en": "Queued: number {position} in line. It starts when the device is free.",
                      "zh": "排队中：第 {position} 位，设备空闲时开始。"},
    "queue_cancelled": {"en": "Removed from the queue before it started.", "zh": "已在开始前移出队列。"},
    "queue_title": {"en": "Device queue", "zh": "设备队列"},
    "queue_empty": {"en": "The device is free; nothing is waiting.", "zh": "设备空闲，没有排队的任务。"},
    "queue_col_run": {"en": "Run", "zh": "任务"},
    "queue_col_kind": {"en": "Kind", "zh": "类型"},
    "queue_col_waited": {"en": "Waiting for", "zh": "已等待"},
    "queue_waited_min": {"en": "{minutes} min", "zh": "{minutes} 分钟"},
    "queue_on_device": {"en": "on the device", "zh": "运行中"},
    "queue_kind_train": {"en": "training", "zh": "训练"},
    "queue_kind_eval": {"en": "evaluation", "zh": "评估"},
    "queue_kind_export": {"en": "export", "zh": "导出"},
    "queue_choice": {"en": "Queued run", "zh": "排队中的任务"},
    "queue_cancel": {"en": "Remove from queue", "zh": "移出队列"},
    "queue_pick_one": {"en": "Choose a queued run first.", "zh": "请先选择一个排队中的任务。"},
    "queue_not_waiting": {"en": "{path} is no longer waiting in the queue.", "zh": "{path} 已不在队列中等待。"},
    "queue_cancel_sent": {"en": "Removing {path} from the queue.", "zh": "正在将 {path} 移出队列。"},
    "run_exists": {"en": "Output dir {path} already holds a run; choose another name.",
                   "zh": "输出目录 {path} 已存在训练记录，请换一个名称。"},
    "run_exists_resume_off": {"en": "Output dir {path} already holds a run; tick Resume to continue it, or choose "
                                    "another name.",
                              "zh": "输出目录 {path} 已存在训练记录；勾选断点续训以继续训练，或换一个名称。"},
    "run_exists_no_checkpoint": {"en": "Output dir {path} already holds a run with no complete checkpoint to resume; "
                                       "choose another name.",
                                 "zh": "输出目录 {path} 已存在训练记录，但没有可续训的完整检查点，请换一个名称。"},
    "resume_conflicts": {"en": "Start will refuse: output dir {path} can only be resumed with the settings it started "
                               "with, and these differ: {fields}. Restore them or choose another output dir.",
                         "zh": "点击开始将被拒绝：输出目录 {path} 只能按首次训练的设置继续，以下设置不同：{fields}。请恢复这些设置或"
                               "更换输出目录。"},
    "resume_from": {"en": "**Resume:** Start continues `{run}` from {checkpoint} ({details}).",
                    "zh": "**断点续训**：点击开始将从 {checkpoint}（{details}）继续训练 `{run}`。"},
    "resume_carried": {"en": "Carried over: {items}.", "zh": "沿用：{items}。"},
    "resume_changes": {"en": "Changed since the first run: {changes}.", "zh": "与首次训练相比的改动：{changes}。"},
    "resume_no_changes": {"en": "No setting changed since the first run.", "zh": "与首次训练相比没有改动。"},
    "resume_skipped": {"en": "Skipped (incomplete): {names}.", "zh": "已跳过（不完整）：{names}。"},
    "carry_step": {"en": "step", "zh": "步数"},
    "carry_weights": {"en": "weights", "zh": "权重"},
    "carry_optimizer": {"en": "optimizer state", "zh": "优化器状态"},
    "carry_scheduler": {"en": "learning-rate scheduler", "zh": "学习率调度器"},
    "carry_rng": {"en": "RNG state", "zh": "随机数状态"},
    "training_resumed": {"en": "Training resumed from {checkpoint}: {path}", "zh": "从 {checkpoint} 继续训练：{path}"},
    "progress": {"en": "Step {step} / {total} · elapsed {elapsed} · remaining {remaining}",
                 "zh": "步数 {step} / {total} · 已用 {elapsed} · 剩余 {remaining}"},
    "invalid_value": {"en": "Invalid value — {error}", "zh": "参数无效 — {error}"},
    # a ConfigError: the field's label, then its cfg_err_<key> message
    "config_error": {"en": "{field}: {message}", "zh": "{field}：{message}"},
    # json's parser reasons (JSONDecodeError.msg, see JSON_REASONS) inside the invalid-JSON messages
    "json_reason_value": {"en": "Expecting value", "zh": "此处应为一个值"},
    "json_reason_name": {"en": "Expecting property name enclosed in double quotes", "zh": "此处应为双引号括起的键名"},
    "json_reason_comma": {"en": "Expecting ',' delimiter", "zh": "此处缺少逗号 ,"},
    "json_reason_colon": {"en": "Expecting ':' delimiter", "zh": "此处缺少冒号 :"},
    "json_reason_extra": {"en": "Extra data", "zh": "JSON 结束后还有多余内容"},
    "json_reason_unterminated": {"en": "Unterminated string starting at", "zh": "字符串没有结束引号"},
    "json_reason_control": {"en": "Invalid control character at", "zh": "字符串中有无效的控制字符"},
    "json_reason_escape": {"en": "Invalid \\escape", "zh": "无效的转义 \\"},
    "json_reason_unicode": {"en": "Invalid \\uXXXX escape", "zh": "无效的 \\uXXXX 转义"},
    # a DataError: where (file, row, field; data_where_* below), then its data_err_<key> message
    "data_error": {"en": "{where}: {message}", "zh": "{where}：{message}"},
    "data_error_sep": {"en": ", ", "zh": "，"},
    "arguments_saved": {"en": "Arguments saved to {path}", "zh": "训练参数已保存至 {path}"},
    "arguments_loaded": {"en": "Arguments loaded from {path}", "zh": "已从 {path} 载入训练参数"},
    "config_not_found": {"en": "Config file {path} does not exist.", "zh": "配置文件 {path} 不存在。"},
    "preset_applied": {"en": "Demo preset applied: identity + general data, a few minutes on a CPU.",
                       "zh": "已应用演示预设：身份数据 + 通用数据，CPU 上几分钟即可完成。"},
    "grpo_preset_applied": {"en": "GRPO demo preset applied: arithmetic questions; the model learns to end its answers "
                                  "with \"Answer: <number>\" (the reward beside the loss).",
                            "zh": "已应用 GRPO 演示预设：算术题；模型学会以“Answer: <数字>”结束回答（奖励曲线与损失并列显示）。"},
    # dataset preview
    "no_dataset": {"en": "Choose a dataset first.", "zh": "请先选择数据集。"},
    "dataset_error": {"en": "Dataset problem — {error}", "zh": "数据集有问题 — {error}"},
    "registry_problems": {"en": "**Datasets missing from the list** — fix these and they appear:\n{problems}",
                          "zh": "**以下数据集未出现在列表中** — 修正后即会出现：\n{problems}"},
    "preview_info": {"en": "**{name}**: {total} samples · page {page} / {pages}",
                     "zh": "**{name}**：共 {total} 条样本 · 第 {page} / {pages} 页"},
    "col_row": {"en": "Row", "zh": "行号"},
    "col_system": {"en": "System", "zh": "系统提示词"},
    "col_prompt": {"en": "Prompt", "zh": "提示"},
    "col_response": {"en": "Response", "zh": "回答"},
    "col_error": {"en": "Error", "zh": "错误"},
    "col_chosen": {"en": "Chosen response", "zh": "优选回答"},
    "col_rejected": {"en": "Rejected response", "zh": "拒绝回答"},
    "col_kto_tag": {"en": "Desirable", "zh": "是否可取"},
    "col_text": {"en": "Text", "zh": "文本"},
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
    "model_files_in": {"en": "Its files are in {folder}.", "zh": "模型文件位于 {folder}。"},
    "model_unloaded": {"en": "Model unloaded.", "zh": "模型已卸载。"},
    "model_not_loaded": {"en": "Load a model first.", "zh": "请先加载模型。"},
    "model_load_failed": {"en": "Cannot load the model — {error}", "zh": "无法加载模型 — {error}"},
    "generation_failed": {"en": "Generation failed — {error}", "zh": "生成失败 — {error}"},
    "answer_cut_unloaded": {"en": "(The model was unloaded while answering; the answer stops here.)",
                            "zh": "（回答过程中模型已被卸载，回答到此为止。）"},
    # model loading refusals (engine.core.model_files.ModelLoadError keys)
    "load_err_pickle_weights": {"en": "{folder} holds its weights only as pickle files ({files}), which can run code "
                                      "when loaded; TuneBoard loads safetensors only. Convert them to safetensors first.",
                                "zh": "{folder} 的权重只有 pickle 文件（{files}），加载时可能执行任意代码；TuneBoard "
                                      "只加载 safetensors，请先转换为 safetensors。"},
    "load_err_no_weights": {"en": "{folder} has no safetensors weights.", "zh": "{folder} 中没有 safetensors 权重。"},
    "load_err_model_missing": {"en": "Model folder {path} does not exist.", "zh": "模型文件夹 {path} 不存在。"},
    "load_err_no_config": {"en": "{path} has no config.json: not a Hugging Face model folder.",
                           "zh": "{path} 中没有 config.json：不是 Hugging Face 模型文件夹。"},
    "load_err_remote_code": {"en": "Model {path} ships its own Python code; it loads only with “Trust remote code” "
                                   "ticked — tick it only if you trust its source.",
                             "zh": "模型 {path} 自带 Python 代码，只有勾选“信任远程代码”才会加载——请仅在信任其来源时勾选。"},
    "load_err_unknown_model": {"en": "{path} is a model type this transformers version does not know; if it ships "
                                     "its own code, tick “Trust remote code” only if you trust it.",
                               "zh": "{path} 的模型类型当前 transformers 版本无法识别；如果它自带代码，请仅在信任时勾选"
                                     "“信任远程代码”。"},
    "load_err_checkpoint_missing": {"en": "Checkpoint {path} does not exist.", "zh": "检查点 {path} 不存在。"},
    "load_err_not_checkpoint": {"en": "{path} is neither a LoRA adapter nor a model folder.",
                                "zh": "{path} 既不是 LoRA 适配器，也不是模型文件夹。"},
    "load_err_adapter_mismatch": {"en": "Cannot attach adapter {path} to this model — {error}",
                                  "zh": "无法将适配器 {path} 加载到此模型 — {error}"},
    "load_err_load_failed": {"en": "Cannot load {path} — {error}", "zh": "无法加载 {path} — {error}"},
    "load_err_unloaded_mid_answer": {"en": "The model was unloaded while answering.", "zh": "回答过程中模型已被卸载。"},
    # chat: compare mode
    "chat_mode": {"en": "Mode",
        "zh": "模式"},
    "mode_single": {"en": "Chat",
        "zh": "对话"},
    "mode_compare": {"en": "Compare side by side",
        "zh": "并排对比"},
    "compare_a": {"en": "Model A",
        "zh": "模型 A"},
    "compare_b": {"en": "Model B",
        "zh": "模型 B"},
    "compare_side_info": {"en": "The loaded base model, or one of its LoRA runs and checkpoints (one base in memory, adapters switched per answer).",
        "zh": "已加载的基础模型，或其 LoRA 训练与检查点（内存中只有一份基础模型，每个回答切换适配器）。"},
    "compare_answers_a": {"en": "Answers of A",
        "zh": "模型 A 的回答"},
    "compare_answers_b": {"en": "Answers of B",
        "zh": "模型 B 的回答"},
    "base_model_choice": {"en": "Base model (no adapter)",
        "zh": "基础模型（无适配器）"},
    "seed": {"en": "Seed",
        "zh": "随机种子"},
    "seed_info": {"en": "Used when temperature > 0: the same seed gives the same answers again; -1: a new draw each time.",
        "zh": "温度大于 0 时使用：相同的种子会再次给出相同的回答；-1：每次重新抽样。"},
    "enable_thinking": {"en": "Enable thinking", "zh": "启用思考模式"},
    "enable_thinking_info": {"en": "Reasoning models think first: the reasoning streams into a collapsed “Thinking” block above the answer and is not sent back with the history. Compare side by side and Evaluate judge the answer alone.",
        "zh": "推理模型先思考：思考过程显示在回答上方可折叠的“思考”块中，不随历史对话发回模型。并排对比与评估只比较回答本身。"},
    "thinking_title": {"en": "Thinking", "zh": "思考"},
    # chat: the checkpoint arena (webui/arena_panel.py)
    "mode_arena": {"en": "Arena", "zh": "竞技场"},
    "arena_intro": {"en": "**Blind arena.** Type a prompt (or draw one) and press **Answer**: two of the contestants "
                          "answer it as *Model A* and *Model B*, their names hidden. Vote for the better answer; only "
                          "then are the names shown and the standings updated.",
                    "zh": "**盲评竞技场。** 输入提示词（或抽取一个）并点击**回答**：两个参赛模型以*模型 A*和*模型 B*的身份回答，"
                          "名称隐藏。为更好的回答投票后，才会显示名称并更新排名。"},
    "arena_name": {"en": "Arena name", "zh": "竞技场名称"},
    "arena_name_info": {"en": "Votes are kept per arena in your saves folder; type a new name to start another.",
                        "zh": "投票按竞技场保存在你的 saves 文件夹中；输入新名称即可开始另一个竞技场。"},
    "arena_contestants": {"en": "Contestants", "zh": "参赛模型"},
    "arena_contestants_info": {"en": "The base model and LoRA runs and checkpoints of the model and method above "
                                     "(at least two); each round draws two of them. Whole-model checkpoints cannot "
                                     "share the base model in memory and are not offered.",
                               "zh": "上方模型与微调方法的基础模型及 LoRA 训练和检查点（至少两个）；每轮从中抽取两个。"
                                     "完整模型检查点无法共用内存中的基础模型，因此不在此列。"},
    "arena_base_name": {"en": "{model} (base model)", "zh": "{model}（基础模型）"},
    "arena_answer": {"en": "Answer", "zh": "回答"},
    "arena_answering": {"en": "Answering… the names are shown once you vote.",
                        "zh": "正在回答……投票后才会显示名称。"},
    "arena_vote_now": {"en": "Both have answered. Which answer is better? Vote to see who is who.",
                       "zh": "两个模型都已回答。哪个回答更好？投票后揭晓身份。"},
    "arena_answers_cut": {"en": "The answers did not finish, so there is nothing to vote on; press Answer to try again.",
                          "zh": "回答未完成，无法投票；请再次点击“回答”。"},
    "arena_other_base": {"en": "Arena {arena} holds votes on the base model {base}; the model now is {model}. Pick or "
                               "type another arena name for it, so that the ratings compare answers of one model.",
                         "zh": "竞技场 {arena} 中是基础模型 {base} 的投票，当前模型是 {model}。请为它选择或输入另一个竞技场名称，"
                               "使评分只比较同一模型的回答。"},
    "arena_need_prompt": {"en": "Type a prompt, or draw one, then press Answer.",
                          "zh": "请先输入或抽取一个提示词，再点击“回答”。"},
    "arena_no_pair": {"en": "Nothing to vote on yet: press Answer first.", "zh": "还没有可投票的回答：请先点击“回答”。"},
    "arena_vote_a": {"en": "A is better", "zh": "A 更好"},
    "arena_vote_b": {"en": "B is better", "zh": "B 更好"},
    "arena_vote_tie": {"en": "Tie", "zh": "平局"},
    "arena_vote_bad": {"en": "Both are bad", "zh": "都不好"},
    "arena_vote_failed": {"en": "The vote was not saved: {error}", "zh": "投票未保存：{error}"},
    "arena_reveal": {"en": "**A:** {a} · **B:** {b} — your vote: {outcome}. Type or draw the next prompt and press "
                           "Answer for the next round.",
                     "zh": "**A**：{a} · **B**：{b} — 你的投票：{outcome}。输入或抽取下一个提示词并点击“回答”，开始下一轮。"},
    "arena_draw_source": {"en": "Draw a prompt from", "zh": "提示词来源"},
    "arena_draw_probes": {"en": "the runs' probe questions", "zh": "训练的探针问题"},
    "arena_draw_dataset": {"en": "a dataset", "zh": "数据集"},
    "arena_draw_from": {"en": "Dataset (Train tab's Data dir)", "zh": "数据集（训练页的数据路径）"},
    "arena_draw": {"en": "Draw a prompt", "zh": "抽取提示词"},
    "arena_no_probes": {"en": "The contestants' runs have no probe questions: type a prompt, or draw one from a "
                              "dataset.",
                        "zh": "参赛训练没有探针问题：请输入提示词，或从数据集中抽取。"},
    "arena_pick_dataset": {"en": "Choose a dataset to draw from.", "zh": "请选择要抽取的数据集。"},
    "arena_draw_failed": {"en": "Could not draw a prompt: {error}", "zh": "无法抽取提示词：{error}"},
    "arena_row_no_prompt": {"en": "The row drawn from {name} has no user prompt; draw again.",
                            "zh": "从 {name} 抽到的这一行没有用户提示词；请重新抽取。"},
    "arena_standings_title": {"en": "### Standings", "zh": "### 排名"},
    "arena_no_votes": {"en": "No votes in arena {name} yet.", "zh": "竞技场 {name} 还没有投票。"},
    "arena_caption": {"en": "Arena {name} · votes: {votes}. Bradley–Terry rating (1000 = average) with its "
                            "95% interval.",
                      "zh": "竞技场 {name}：共 {votes} 票。Bradley–Terry 评分（1000 = 平均）及其 95% 置信区间。"},
    "arena_skipped_lines": {"en": "Unreadable lines of the votes file skipped: {count}.",
                            "zh": "已跳过投票文件中 {count} 行无法读取的内容。"},
    "arena_col_rank": {"en": "#", "zh": "#"},
    "arena_col_model": {"en": "Model", "zh": "模型"},
    "arena_col_rating": {"en": "Rating (95% CI)", "zh": "评分（95% 置信区间）"},
    "arena_col_win_rate": {"en": "Win rate", "zh": "胜率"},
    "arena_col_votes": {"en": "Votes", "zh": "票数"},
    "arena_col_record": {"en": "Won / lost / tie / both bad", "zh": "胜 / 负 / 平 / 都不好"},
    "arena_plot": {"en": "Ratings", "zh": "评分"},
    "arena_plot_rating": {"en": "Rating (1000 = average)", "zh": "评分（1000 = 平均）"},
    "arena_download": {"en": "Download votes (jsonl)", "zh": "下载投票（jsonl）"},
    "arena_export_title": {"en": "### Votes become training data\nWrite the decided votes as a preference dataset "
                                 "into the Train tab's Data dir, then train a DPO, ORPO or KTO run on it.",
                           "zh": "### 投票变成训练数据\n将分出胜负的投票写成偏好数据集，保存到训练页的数据路径，"
                                 "然后用它训练 DPO、ORPO 或 KTO。"},
    "arena_dataset_name": {"en": "Dataset name", "zh": "数据集名称"},
    "arena_dataset_name_info": {"en": "Registered under this name in dataset_info.json.",
                                "zh": "以此名称登记在 dataset_info.json 中。"},
    "arena_kind": {"en": "Ties and both-bad votes", "zh": "平局与“都不好”的投票"},
    "arena_kind_pairs": {"en": "leave out (DPO/ORPO pairs)", "zh": "不写入（DPO/ORPO 偏好对）"},
    "arena_kind_kto": {"en": "KTO labels (every answer marked good or bad)", "zh": "KTO 标签（每个回答标为好或坏）"},
    "arena_write": {"en": "Write preference dataset", "zh": "写入偏好数据集"},
    "arena_write_failed": {"en": "The dataset was not written: {error}", "zh": "数据集未写入：{error}"},
    "arena_train_from": {"en": "It starts from the arena's leader, **{name}** (set as the checkpoint path).",
                         "zh": "训练将从竞技场第一名 **{name}** 继续（已设为检查点路径）。"},
    "arena_written": {"en": "Wrote dataset `{name}` to `{folder}` (preference pairs: {rows}). **Train on it** opens the "
                            "Train tab with stage DPO and this dataset picked (ORPO trains on it too).",
                      "zh": "已写入数据集 `{name}`：{rows} 个偏好对，位于 `{folder}`。**用它训练**会打开训练页，"
                            "选好 DPO 阶段和此数据集（ORPO 也可以用它训练）。"},
    "arena_written_kto": {"en": "Wrote dataset `{name}` to `{folder}` (labelled answers: {rows}). **Train on it** opens "
                                "the Train tab with stage KTO and this dataset picked.",
                          "zh": "已写入数据集 `{name}`：{rows} 个带标签的回答，位于 `{folder}`。**用它训练**会打开训练页，"
                                "选好 KTO 阶段和此数据集。"},
    "arena_written_elsewhere": {"en": "(The Train tab's Data dir `{folder}` is not one you may write to, so it went "
                                      "to your own data folder.)",
                                "zh": "（训练页的数据路径 `{folder}` 不允许你写入，因此写到了你自己的数据文件夹。）"},
    "arena_train_on_it": {"en": "Train on it", "zh": "用它训练"},
    "load_err_compare_not_lora": {"en": "{path} is a whole model, not a LoRA adapter: it cannot share the loaded base model. Compare it by loading it in the single chat.",
        "zh": "{path} 是完整模型而不是 LoRA 适配器，无法共用已加载的基础模型。请在普通对话中加载它进行比较。"},
    # evaluate & export
    "compare_base": {"en": "Evaluate tuned and base", "zh": "评估微调模型与基础模型"},
    "eval_started": {"en": "Evaluation started: {path}", "zh": "评估开始：{path}"},
    "eval_finished": {"en": "Evaluation finished", "zh": "评估完毕"},
    "eval_stopped": {"en": "Evaluation stopped.", "zh": "评估已中断。"},
    "eval_failed": {"en": "Evaluation failed: {error}", "zh": "评估失败：{error}"},
    "metrics": {"en": "Metrics", "zh": "评估指标"},
    "predictions": {"en": "Predictions", "zh": "预测结果"},
    "predictions_info": {"en": "{total} predictions · page {page} / {pages}",
                         "zh": "共 {total} 条预测 · 第 {page} / {pages} 页"},
    "download_predictions": {"en": "Download predictions (jsonl)", "zh": "下载预测结果（jsonl）"},
    "col_model": {"en": "Model", "zh": "模型"},
    "col_reference": {"en": "Reference", "zh": "参考答案"},
    "col_prediction": {"en": "Prediction", "zh": "预测"},
    "col_base_prediction": {"en": "Base model prediction", "zh": "基础模型预测"},
    "col_tuned_prediction": {"en": "Fine-tuned prediction", "zh": "微调模型预测"},
    "model_fine_tuned": {"en": "fine-tuned", "zh": "微调后"},
    "model_base": {"en": "base", "zh": "基础模型"},
    "model_model": {"en": "model", "zh": "模型"},
    "metric_eval_loss": {"en": "loss", "zh": "损失"},
    "metric_perplexity": {"en": "perplexity", "zh": "困惑度"},
    "metric_rouge_1": {"en": "ROUGE-1", "zh": "ROUGE-1"},
    "metric_rouge_2": {"en": "ROUGE-2", "zh": "ROUGE-2"},
    "metric_rouge_l": {"en": "ROUGE-L", "zh": "ROUGE-L"},
    "metric_bleu_4": {"en": "BLEU-4", "zh": "BLEU-4"},
    "metric_samples": {"en": "samples", "zh": "样本数"},
    "metric_runtime_s": {"en": "seconds", "zh": "耗时（秒）"},
    "export_button": {"en": "Export", "zh": "开始导出"},
    "export_started": {"en": "Export started: {path}", "zh": "导出开始：{path}"},
    "export_finished": {"en": "Export finished", "zh": "导出完毕"},
    "export_stopped": {"en": "Export stopped; nothing was written.", "zh": "导出已中断，未写入任何文件。"},
    "export_failed": {"en": "Export failed: {error}", "zh": "导出失败：{error}"},
    "export_result": {"en": "Model written to `{path}`", "zh": "模型已写入 `{path}`"},
    "export_pushed": {"en": "Pushed to {url}", "zh": "已上传到 {url}"},
    "export_dir_not_empty": {"en": "export dir {path} exists and is not empty", "zh": "导出目录 {path} 已存在且非空"},
    # engine.core.paths.PathError keys (webui/errors.py words them after the field's label)
    "path_err_empty": {"en": "is empty", "zh": "不能为空"},
    "path_err_nul": {"en": "contains a NUL byte", "zh": "包含 NUL 字节"},
    "path_err_not_inside": {"en": "{name} must be a name inside {root}, not an absolute path",
                            "zh": "{name} 必须是 {root} 内的名称，不能是绝对路径"},
    "path_err_names_root": {"en": "{name} names {root} itself; give a name inside it",
                            "zh": "{name} 指向 {root} 本身；请给出其中的一个名称"},
    "path_err_outside": {"en": "{name} points outside {root}", "zh": "{name} 指向 {root} 之外"},
    "path_err_not_one_name": {"en": "{name} must be one folder name, without '/' or '..': a run cannot lie inside another run's folder",
        "zh": "{name} 必须是单个文件夹名，不能含 '/' 或 '..'：任务不能放在另一个任务的文件夹里"},
    "path_err_name_too_long": {"en": 'a folder name of {length} bytes is longer than the file system allows ({limit} bytes)',
        "zh": '文件夹名长 {length} 字节，超过了文件系统允许的 {limit} 字节'},
    "path_err_path_too_long": {"en": 'the path is {length} bytes long, more than the system allows ({limit} bytes)',
        "zh": '路径长 {length} 字节，超过了系统允许的 {limit} 字节'},
    "path_err_not_a_folder": {"en": '{path} is a file, not a folder',
        "zh": '{path} 是文件而不是文件夹'},
    "run_folder_not_a_run": {"en": "Output dir {path} already holds files that are not a run (another run's checkpoint?); choose another name.",
        "zh": '输出目录 {path} 中已有不属于任务的文件（可能是另一个任务的检查点），请换一个名称。'},
    "run_exists_no_settings": {"en": 'Output dir {path} holds a run whose settings (run.yaml) are missing or unreadable, so it cannot be resumed; choose another name.',
        "zh": '输出目录 {path} 中的任务缺少或无法读取其设置（run.yaml），无法续训，请换一个名称。'},
    "path_err_outside_data_roots": {"en": "{path} is outside the data folders this server allows ({roots}); "
                                          "the server's `--data-root` option allows others",
                                    "zh": "{path} 不在本服务器允许的数据文件夹内（{roots}）；"
                                          "服务器的 `--data-root` 选项可允许其他文件夹"},
    "path_err_data_in_runs": {"en": "{path} is inside the runs folder {runs}; datasets cannot live there",
                              "zh": "{path} 位于运行文件夹 {runs} 内；数据集不能放在那里"},
    # loss plot
    "plot_step": {"en": "step", "zh": "步数"},
    "plot_loss": {"en": "loss", "zh": "损失"},
    "plot_smoothed": {"en": "smoothed", "zh": "平滑"},
    "plot_eval_loss": {"en": "eval loss", "zh": "验证损失"},
    "plot_reward": {"en": "reward", "zh": "奖励"},
    "plot_reward_std": {"en": "reward ± std", "zh": "奖励 ± 标准差"},
    "plot_probe_score": {"en": "probe score", "zh": "探针得分"},
    # scored probes in the probe tables (issue 22): the expectation under each question, the round's mean
    "probe_mean": {"en": "Mean score", "zh": "平均得分"},
    "probe_kind_contains": {"en": "contains", "zh": "包含"},
    "probe_kind_exact": {"en": "exactly", "zh": "完全一致"},
    "probe_kind_regex": {"en": "matches regex", "zh": "匹配正则"},
    "probe_kind_rouge_l": {"en": "ROUGE-L", "zh": "ROUGE-L"},
    "probe_kind_bleu_4": {"en": "BLEU-4", "zh": "BLEU-4"},
    # runs view (issue 7): every run under saves/, overlaid loss curves, settings diff, delete
    "tab_runs": {"en": "Runs", "zh": "训练记录"},
    "runs_refresh": {"en": "Refresh", "zh": "刷新"},
    "runs_summary": {"en": "{count} run(s) under `{root}`", "zh": "`{root}` 下共 {count} 个任务"},
    "runs_none": {"en": "No runs yet under `{root}`.", "zh": "`{root}` 下还没有任务。"},
    "runs_table": {"en": "All runs", "zh": "全部任务"},
    "runs_col_run": {"en": "Run", "zh": "任务"},
    "runs_col_kind": {"en": "Kind", "zh": "类型"},
    "runs_show": {"en": "Show", "zh": "显示"},
    "runs_show_train": {"en": "Training runs", "zh": "训练任务"},
    "runs_show_eval": {"en": "Evaluations", "zh": "评估任务"},
    "runs_show_export": {"en": "Exports", "zh": "导出任务"},
    "runs_show_all": {"en": "All kinds", "zh": "全部类型"},
    "runs_col_model": {"en": "Model", "zh": "模型"},
    "runs_col_method": {"en": "Method · stage", "zh": "方法 · 阶段"},
    "runs_col_status": {"en": "Status", "zh": "状态"},
    "runs_col_datasets": {"en": "Datasets", "zh": "数据集"},
    "runs_col_lr": {"en": "Learning rate", "zh": "学习率"},
    "runs_col_epochs": {"en": "Epochs", "zh": "轮数"},
    "runs_col_lora_rank": {"en": "LoRA rank", "zh": "LoRA 秩"},
    "runs_col_batch": {"en": "Batch × accumulation", "zh": "批大小 × 梯度累积"},
    "runs_col_cutoff": {"en": "Cutoff length", "zh": "截断长度"},
    "runs_col_final_loss": {"en": "Final loss", "zh": "最终损失"},
    "runs_col_best_loss": {"en": "Best loss", "zh": "最低损失"},
    "runs_col_best_eval_loss": {"en": "Best eval loss", "zh": "最低验证损失"},
    "runs_col_duration": {"en": "Duration", "zh": "用时"},
    "runs_col_tokens_per_s": {"en": "Tokens/s", "zh": "词元/秒"},
    "runs_col_final_probe_score": {"en": "Final probe score", "zh": "最终探针得分"},
    "runs_col_best_probe_score": {"en": "Best probe score", "zh": "最高探针得分"},
    "runs_col_question": {"en": "Probe question", "zh": "探针问题"},
    "runs_probes": {"en": "The same probes answered by each run (its last probe round), coloured by score.",
                    "zh": "各任务对相同探针的回答（取其最后一轮探针），按得分着色。"},
    "runs_probe_step": {"en": "step {step}", "zh": "第 {step} 步"},
    "runs_probe_none": {"en": "no probe round", "zh": "没有探针记录"},
    "runs_probe_final": {"en": "final score {score}", "zh": "最终得分 {score}"},
    "runs_col_setting": {"en": "Parameter", "zh": "参数"},
    "runs_state_queued": {"en": "queued", "zh": "排队中"},
    "runs_state_running": {"en": "running", "zh": "运行中"},
    "runs_state_finished": {"en": "finished", "zh": "已完成"},
    "runs_state_failed": {"en": "failed", "zh": "失败"},
    "runs_state_stopped": {"en": "stopped", "zh": "已中断"},
    "runs_state_unreadable": {"en": "unreadable", "zh": "无法读取"},
    "runs_state_removed": {"en": "removed from queue", "zh": "已移出队列"},
    "runs_status_unreadable": {"en": "The state of {run} cannot be read: {error}", "zh": "无法读取 {run} 的状态：{error}"},
    "runs_compare": {"en": "Compare runs", "zh": "对比任务"},
    "runs_compare_info": {"en": "Choose several runs: their loss curves share one plot, and the settings in which "
                                "they differ are listed below it.",
                          "zh": "选择多个任务：它们的损失曲线画在同一张图中，下方列出它们不同的参数。"},
    "runs_overlay": {"en": "Loss curves", "zh": "损失曲线"},
    "runs_diff": {"en": "Settings that differ", "zh": "不同的参数"},
    "runs_pick_two": {"en": "Choose at least two runs to compare their settings.",
                      "zh": "请至少选择两个任务以对比参数。"},
    "runs_same_settings": {"en": "These runs were started with the same settings.", "zh": "这些任务的参数完全相同。"},
    "runs_no_curve": {"en": "{run} has no loss points yet (not a training run, or none logged).",
                      "zh": "{run} 还没有损失数据（不是训练任务，或尚未记录）。"},
    "runs_config_unreadable": {"en": "Settings of {run} cannot be read from {path}: {error}",
                               "zh": "无法从 {path} 读取 {run} 的参数：{error}"},
    "runs_config_missing": {"en": "Settings of {run} cannot be read: {path} is missing",
                            "zh": "无法读取 {run} 的参数：{path} 不存在"},
    "runs_manage": {"en": "Run", "zh": "任务"},
    "runs_manage_info": {"en": "Shows the run's folder (copy the path to open it on the server); a finished, failed "
                               "or stopped run can be deleted.",
                         "zh": "显示任务的文件夹（复制路径后在服务器上打开）；已完成、失败或已中断的任务可以删除。"},
    "runs_path": {"en": "Folder path", "zh": "文件夹路径"},
    "runs_delete": {"en": "Delete run", "zh": "删除任务"},
    "path_err_other_user": {"en": "{path} belongs to another user's workspace", "zh": "{path} 属于其他用户的工作区"},
    "path_err_queue_share_full": {"en": "{count} of your jobs are already waiting for the device (the class shares one queue: at most {limit} waiting jobs each). Cancel one or wait until one starts.", "zh": "你已有 {count} 个任务在等待设备（全班共用一个队列：每人最多 {limit} 个等待中的任务）。请取消一个，或等其中一个开始。"},
    "queue_other_user": {"en": "another user's job", "zh": "其他用户的任务"},
    "runs_share": {"en": "Share / unshare", "zh": "共享 / 取消共享"},
    "runs_shared_mark": {"en": "(shared)", "zh": "（共享）"},
    "runs_no_login": {"en": "without login", "zh": "无登录"},
    "runs_share_admins_only": {"en": "Only an admin login can share runs.", "zh": "只有管理员账号可以共享任务。"},
    "runs_shared": {"en": "Run {run} is now shared with every login: they can chat with it, evaluate and export it, but not change or delete it.", "zh": "任务 {run} 已共享给所有账号：他们可以用它对话、评估和导出，但不能修改或删除。"},
    "runs_unshared": {"en": "Run {run} is no longer shared.", "zh": "任务 {run} 已取消共享。"},
    "runs_confirm_delete": {"en": "Confirm delete", "zh": "确认删除"},
    "runs_cancel": {"en": "Cancel", "zh": "取消"},
    "runs_confirm_text": {"en": "Delete run **{run}**? Its folder `{path}` is removed with every checkpoint, weight "
                                "and log in it. This cannot be undone.",
                          "zh": "删除任务 **{run}**？其文件夹 `{path}` 连同其中的所有检查点、权重和日志都将被删除，且无法恢复。"},
    "runs_pick_one": {"en": "Choose a run first.", "zh": "请先选择一个任务。"},
    "runs_deleted": {"en": "Deleted run {run} (`{path}`).", "zh": "已删除任务 {run}（`{path}`）。"},
    "runs_delete_busy": {"en": "Not deleted (queued or running): {error}", "zh": "未删除，任务仍在排队或运行：{error}"},
    "runs_delete_refused": {"en": "Not deleted: {error}", "zh": "未删除：{error}"},
    # dataset check: token-length histogram, cutoff counts, a sample as the model sees it
    "check_dataset": {"en": "Check dataset",
                      "zh": "检查数据集"},
    "length_plot": {"en": "Sample lengths in tokens",
                    "zh": "样本长度（token 数）"},
    "plot_tokens": {"en": "tokens per sample",
                    "zh": "每个样本的 token 数"},
    "plot_samples": {"en": "samples",
                     "zh": "样本数"},
    "plot_cutoff": {"en": "cutoff {cutoff}",
                    "zh": "截断长度 {cutoff}"},
    "length_counts": {"en": "**{samples}** samples · **{cut}** cut to {cutoff} tokens · **{dropped}** dropped "
                            "(answer beyond the cutoff) · longest {longest} tokens · mean {mean}",
                      "zh": "**{samples}** 个样本 · **{cut}** 个被截断到 {cutoff} 个 token · **{dropped}** 个被丢弃（回答在截断长度之外） · "
                            "最长 {longest} 个 token · 平均 {mean}"},
    "length_counts_pt": {"en": "**{samples}** texts · **{cut}** split into rows of {cutoff} tokens · "
                               "**{dropped}** empty (no row) · longest {longest} tokens · mean {mean}",
                         "zh": "**{samples}** 段文本 · **{cut}** 段被切分为每行 {cutoff} 个 token · **{dropped}** 段为空（不成行） · 最长 "
                               "{longest} 个 token · 平均 {mean}"},
    "check_error": {"en": "Cannot check the dataset — {error}",
                    "zh": "无法检查数据集 — {error}"},
    "sample_number": {"en": "Row to show",
                      "zh": "要显示的行"},
    "sample_number_info": {"en": "Position in the first chosen dataset (1: its first sample); clicking a "
                                 "table row picks it.",
                           "zh": "在第一个所选数据集中的位置（1 表示第一个样本）；点击表格中的一行即可选中。"},
    "sample_number_invalid": {"en": "Row to show: give a whole number from 1 on.",
                              "zh": "要显示的行：请填写从 1 开始的整数。"},
    "show_formatted": {"en": "Show as the model sees it",
                       "zh": "显示模型看到的内容"},
    "part_sample": {"en": "What the model sees",
                    "zh": "模型看到的内容"},
    "part_chosen": {"en": "With the chosen answer",
                    "zh": "配合选中的回答"},
    "part_rejected": {"en": "With the rejected answer",
                      "zh": "配合被拒绝的回答"},
    "part_prompt": {"en": "The prompt completions are sampled from",
                    "zh": "用于采样回答的提示"},
    "part_desirable": {"en": "Desirable answer",
                       "zh": "期望的回答"},
    "part_undesirable": {"en": "Undesirable answer",
                         "zh": "不期望的回答"},
    "part_piece": {"en": "Row {number} of {total}",
                   "zh": "第 {number} / {total} 行"},
    "legend_masked": {"en": "Prompt: masked, not trained on",
                      "zh": "提示：已遮盖，不参与训练"},
    "legend_trained": {"en": "Answer: trained on",
                       "zh": "回答：参与训练"},
    "legend_cut": {"en": "Beyond the cutoff: never seen",
                   "zh": "超出截断长度：模型看不到"},
    "token_count": {"en": "{count} tokens",
                    "zh": "{count} 个 token"},
    "fate_kept": {"en": "Fits within the cutoff length of {cutoff} tokens.",
                  "zh": "在 {cutoff} 个 token的截断长度之内。"},
    "fate_cut": {"en": "Longer than the cutoff length: training cuts it to {cutoff} tokens.",
                 "zh": "超过截断长度：训练时被截断到 {cutoff} 个 token。"},
    "fate_split": {"en": "Longer than the cutoff length: pre-training splits it into rows of {cutoff} tokens.",
                   "zh": "超过截断长度：预训练时被切分为每行 {cutoff} 个 token。"},
    "fate_dropped": {"en": "Dropped: its answer lies wholly beyond the cutoff length of {cutoff} tokens, so "
                           "training skips it.",
                     "zh": "被丢弃：其回答完全位于 {cutoff} 个 token的截断长度之外，训练时会跳过。"},
    "beyond_max_samples": {"en": "Row {row} lies beyond Max samples ({max}): training does not use it.",
                           "zh": "第 {row} 行超出了最大样本数（{max}）：训练不会使用它。"},
    # add dataset: upload a file, identity builder
    "group_add_dataset": {"en": "Add dataset", "zh": "添加数据集"},
    "upload_title": {"en": "#### Upload a file", "zh": "#### 上传文件"},
    "upload_limit": {"en": "json, jsonl, csv or parquet, up to {mb} MB. The format and columns are detected and every "
                           "row is checked before anything is saved.",
                     "zh": "支持 json、jsonl、csv 或 parquet，最大 {mb} MB。保存前会识别格式与列，并逐行检查。"},
    "upload_file": {"en": "Dataset file", "zh": "数据集文件"},
    "upload_kind": {"en": "Format", "zh": "数据格式"},
    "upload_kind_info": {"en": "Detected from the file; change it if the guess is wrong.",
                         "zh": "根据文件自动识别；识别有误时可在此更改。"},
    "kind_alpaca": {"en": "Alpaca (instruction / input / output)", "zh": "Alpaca 格式（instruction / input / output）"},
    "kind_sharegpt": {"en": "ShareGPT (conversations of turns)", "zh": "ShareGPT（多轮对话）"},
    "kind_preference": {"en": "Preference (chosen / rejected answers)", "zh": "偏好数据（chosen / rejected 回答）"},
    "upload_name": {"en": "Dataset name", "zh": "数据集名称"},
    "upload_name_info": {"en": "Registered under this name; the file is saved in the data dir as name plus its "
                               "extension.",
                         "zh": "以此名称注册；文件以“名称 + 扩展名”保存到数据路径中。"},
    "upload_overwrite": {"en": "Replace a dataset of the same name", "zh": "替换同名数据集"},
    "upload_numbers_text": {"en": "Read numbers as text", "zh": "数字按文本读取"},
    "upload_register": {"en": "Register dataset", "zh": "注册数据集"},
    "upload_unusable": {"en": "**This file cannot be used:** {error}", "zh": "**无法使用该文件**：{error}"},
    "upload_problems": {"en": "**{count} problem(s) in {rows} rows; nothing is registered.** Fix the file and upload "
                              "it again:",
                        "zh": "**{rows} 行中发现 {count} 个问题，未注册任何内容**。请修改文件后重新上传："},
    "upload_more": {"en": "… and {more} more", "zh": "……另有 {more} 个"},
    "upload_ok": {"en": "**Format: {kind}** · {rows} rows, all valid. Check the columns, then press Register dataset.",
                  "zh": "**格式：{kind}** · 共 {rows} 行，全部有效。请核对各列，然后点击“注册数据集”。"},
    "upload_mapping_head": {"en": "| Meaning | Key in `dataset_info.json` | In the file |",
                            "zh": "| 含义 | `dataset_info.json` 中的键 | 文件中的名称 |"},
    "role_prompt": {"en": "Instruction (question)", "zh": "指令（问题）"},
    "role_query": {"en": "Input added to the instruction", "zh": "附加在指令后的输入"},
    "role_response": {"en": "Answer", "zh": "回答"},
    "role_system": {"en": "System prompt", "zh": "系统提示词"},
    "role_history": {"en": "Earlier turns", "zh": "历史对话"},
    "role_messages": {"en": "Conversation", "zh": "对话"},
    "role_chosen": {"en": "Preferred answer", "zh": "更优的回答"},
    "role_rejected": {"en": "Rejected answer", "zh": "较差的回答"},
    "role_role_tag": {"en": "Key of a turn's speaker", "zh": "发言者的键"},
    "role_content_tag": {"en": "Key of a turn's text", "zh": "发言内容的键"},
    "role_user_tag": {"en": "User's turns", "zh": "用户发言"},
    "role_assistant_tag": {"en": "Assistant's turns", "zh": "助手发言"},
    "role_system_tag": {"en": "System turn", "zh": "系统发言"},
    "role_kto_tag": {"en": "KTO label (answer desirable: true/false)", "zh": "KTO 标签（回答是否可取：true/false）"},
    "upload_no_file": {"en": "Upload a file first.", "zh": "请先上传文件。"},
    "upload_failed": {"en": "Not registered: {error}", "zh": "未注册：{error}"},
    "upload_registered": {"en": "Registered dataset **{name}** ({file}); it is now in the Dataset list.",
                          "zh": "已注册数据集 **{name}**（{file}），现在可在“数据集”列表中选择。"},
    "identity_title": {"en": "#### Identity dataset", "zh": "#### 身份数据集"},
    "identity_intro": {"en": "Writes a ready identity dataset in English and Chinese: the demo identity questions "
                             "answered with this name and author, plus questions about the optional facts.",
                       "zh": "生成中英双语的身份数据集：用此名称与作者回答演示身份数据中的问题，并为选填的信息生成问答。"},
    "identity_dataset": {"en": "Identity dataset name", "zh": "身份数据集名称"},
    "identity_dataset_info": {"en": "Registered under this name in the data dir.",
                              "zh": "以此名称注册到数据路径中。"},
    "identity_name": {"en": "Name", "zh": "名称"},
    "identity_name_example": {"en": "e.g. Nova", "zh": "例如：小星"},
    "identity_author": {"en": "Author", "zh": "作者"},
    "identity_author_example": {"en": "e.g. the Acme Lab", "zh": "例如：某某实验室"},
    "identity_purpose": {"en": "Purpose (optional)", "zh": "用途（选填）"},
    "identity_purpose_info": {"en": "What the assistant is for, e.g. answering questions about our physics course.",
                              "zh": "助手的用途，例如：解答物理课程相关问题。"},
    "identity_contact": {"en": "Contact (optional)", "zh": "联系方式（选填）"},
    "identity_contact_info": {"en": "Where to reach the author, e.g. an e-mail address.",
                              "zh": "联系作者的方式，例如电子邮箱。"},
    "identity_extra": {"en": "Extra facts (optional)", "zh": "更多问答（选填）"},
    "identity_extra_info": {"en": "One per line: question | answer. {{name}} and {{author}} are filled in.",
                            "zh": "每行一条：问题 | 回答。其中的 {{name}} 和 {{author}} 会被替换。"},
    "identity_build": {"en": "Write identity dataset", "zh": "生成身份数据集"},
    "identity_failed": {"en": "Not written: {error}", "zh": "未生成：{error}"},
    "identity_written": {"en": "Wrote dataset **{name}**: {rows} questions and answers ({file}); it is now in the "
                               "Dataset list.",
                         "zh": "已生成数据集 **{name}**：共 {rows} 条问答（{file}），现在可在“数据集”列表中选择。"},
}


# ConfigError messages (engine.core.config.CONFIG_MESSAGES keys) in Chinese; ja/ko/ru have CONFIG_ERRORS.
CONFIG_ERRORS_ZH = {
    "not_sections": "应为由各部分组成的映射，实际为 {kind}",
    "unknown_section": "未知的部分（已知：{known}）",
    "yaml_invalid": "不是有效的 YAML：{error}",
    "not_utf8": "{path} 不是 UTF-8 文本（可能不是 YAML 配置文件？）",
    "unreadable": "无法读取 {path}：{reason}",
    "too_big": "{path} 超过 {limit_mb} MB：不是本应用写出的配置文件",
    "yaml_too_deep": "嵌套层级太深，无法读取",
    "empty": "不能为空",
    "no_dataset": "请至少选择一个数据集",
    "zero_layers": "不能为 0（正数：最后 N 层；负数：最前 N 层）",
    "quantized_needs_lora": "量化后的基础权重只能用 LoRA 训练（QLoRA）",
    "quantization_needs_dataset": "请为 GPTQ 量化选择校准数据集",
    "gptq_needs_cuda": "GPTQ 量化需要 NVIDIA GPU（CUDA）和 gptqmodel 包（pip install gptqmodel）；本机只有 {device}",
    "gptq_needs_package": "GPTQ 量化需要 gptqmodel 包：pip install gptqmodel",
    "gguf_with_gptq": "GPTQ 量化后的模型无法写成 GGUF；请二选一",
    "gguf_architecture": "GGUF 导出支持 {supported}；此模型为 {architecture}",
    "gguf_rope_scaling": "GGUF 导出只支持默认的旋转位置编码；此模型使用 {rope_type}",
    "gguf_tokenizer": "GGUF 导出只支持字节级 BPE 分词器；此模型的分词器为 {kind}",
    "hub_repo_id": "应为 owner/name 形式的仓库 ID，实际为 {value!r}",
    "hub_token_missing": "上传到 {hub} 需要环境变量 {variable} 中的令牌（不能填在表单里）",
    "patience_needs_val": "需要验证集：请将“验证集比例”设为大于 0",
    "too_many_probes": "最多 {limit} 个问题，每行一个",
    "too_many_probes_dataset": "{typed} 个手写问题加 {rows} 行数据集：探针合计最多 {limit} 个",
    "probe_regex": "第 {line} 行：不是有效的正则表达式：{error}",
    "probe_kind": "第 {line} 行：未知的期望类型 {kind!r}（可用：{known}）；若要期望以它开头的文字，请在前面写 contains:",
    "probe_no_expectation": "第 {line} 行：=> 之后没有内容；请写出回答应包含的文字，或删去 =>",
    "probe_no_question": "第 {line} 行：=> 之前没有问题",
    "probe_stop_needs_patience": "请把早停耐心值（无改善的探针轮数）设为大于 0",
    "probe_stop_needs_scores": "需要可打分的探针：带期望的问题（问题 => 期望）或探针数据集",
    "probe_stop_rm": "奖励模型不回答探针：请选择验证损失",
    "probe_stop_one_process": "按探针得分早停需要单进程训练且不用 ZeRO-3（只有第一个进程回答探针）：请选择验证损失",
    "ftx_dpo_only": "SFT 混合损失仅适用于 DPO 阶段",
    "ppo_needs_reward_model": "PPO 需要奖励模型：请选择本模型的一个奖励模型训练结果或其检查点",
    "ppo_no_validation": "PPO 没有验证损失：请设为 0",
    "ppo_one_process": "PPO 只在一个设备上以单进程运行，不使用 DeepSpeed",
    "reward_model_outside_saves": "{path!r} 不在运行结果文件夹（{roots}）内；请选择一个奖励模型训练的检查点",
    "reward_model_not_rm": "{path!r} 不是奖励模型训练的结果或其检查点",
    "reward_model_other_base": "{path!r} 基于 {base} 训练，而不是 {model}",
    "reward_model_no_weights": "{path!r} 还没有权重（仍在训练，或检查点未写完）",
    "no_reward": "请至少选择一个奖励函数",
    "regex_invalid": "不是有效的正则表达式：{error}",
    "generations_divide": "须能整除每步的回答数：批处理大小 × 梯度累积 × 进程数 = {batch}",
    "pissa_with_dora": "PiSSA 初始化不能与 DoRA 同时使用",
    "new_adapter_needs_checkpoint": "请选择一个检查点，在其基础上创建新适配器",
    "compare_needs_checkpoint": "请选择一个检查点再与基础模型对比",
    "llama_pro_needs_freeze": "LLaMA Pro 训练扩展出的块：请选择 freeze 方法",
    "llama_pro_zero3": "LLaMA Pro 需要复制整个块，而 ZeRO-3 会把它们切分到各个设备上：请选择 none 或 2",
    "llama_pro_layers": "使用 LLaMA Pro 时这是要添加的块数：必须为正数",
    "shift_attn_packing": "shift short attention 需要填充的批次：请取消序列打包",
    "shift_attn_booster": "shift short attention 基于 PyTorch SDPA：请选择加速方式 auto 或 none",
    "booster_needs_cuda": "{booster} 需要 CUDA GPU；本次运行在 {device} 上。请选择 auto 或 none",
    "booster_needs_package": "{booster} 需要 {package} 包（{command}）",
    "one_memory_optimizer": "GaLore、APOLLO 和 BAdam 不能同时使用（已开启：{other}）",
    "memory_optimizer_lora": "{optimizer} 训练完整权重：请选择全参数或部分参数微调，而不是 LoRA",
    "badam_needs_full": "BAdam 自行选择训练的块：请选择全参数微调",
    "memory_optimizer_deepspeed": "{optimizer} 不能与 DeepSpeed 同时使用：请将 DeepSpeed stage 设为 none",
    "low_rank_optim": "{optimizer} 没有 {optim} 优化器的版本（请选择 {choices} 之一）",
    "low_rank_optim_args": "optim_args 由 {optimizer} 参数组设置；请从额外参数中删除",
    "badam_ratio_distributed": "ratio-wise BAdam 只能在单进程中运行：请选择 layer 模式或单个设备",
    "badam_layer_distributed": "多进程的 layer-wise BAdam 需要 DeepSpeed stage 3",
    "badam_deepspeed": "BAdam 只有在 layer-wise 模式且 stage 为 3 时才能与 DeepSpeed 一起使用",
    "no_target_modules": "模型中没有与 {target!r} 匹配的可训练线性层",
    "needs_package": "{what} 需要 {package} 包，但此处未安装：{command}",
    "compile_needs_compiler": "torch_compile 需要可用的 C++ 编译器，此处未找到（{compiler}）：请安装一个"
                              "（Debian/Ubuntu：apt install g++），或删除 torch_compile",
    "node_rank": "必须小于节点数（{nnodes}）",
    "master_addr": "请填写 0 号节点的地址",
    "master_addr_local": "{addr} 只指向本机；多节点训练时，请填写其他节点能访问到的 0 号节点地址",
    "extra_args_json": "不是有效的 JSON（{error}，第 {column} 列）",
    "extra_args_list": "必须是 JSON 对象，例如 {example}，实际是列表",
    "extra_args_string": "必须是 JSON 对象，例如 {example}，实际是字符串",
    "extra_args_number": "必须是 JSON 对象，例如 {example}，实际是数字",
    "extra_args_bool": "必须是 JSON 对象，例如 {example}，实际是 true/false",
    "extra_args_null": "必须是 JSON 对象，例如 {example}，实际是 null",
    "extra_arg_unknown": "不是允许的参数（允许：{allowed}）",
    "extra_arg_number": "应为数字，实际为 {value!r}",
    "extra_arg_bool": "应为 true/false，实际为 {value!r}",
    "extra_arg_object": "应为对象，实际为 {value!r}",
    "extra_arg_text": "应为文本，实际为 {value!r}",
    "devices_format": "应为设备编号，例如 0,1；实际为 {value!r}",
    "device_twice": "设备 {device} 重复列出",
    "not_mapping": "应为映射，实际为 {kind}",
    "unknown_field": "未知的字段",
    "empty_int": "为空；请输入整数",
    "empty_number": "为空；请输入数字",
    "expected_bool": "应为 true 或 false，实际为 {value!r}",
    "expected_int": "应为整数，实际为 {value!r}",
    "expected_number": "应为数字，实际为 {value!r}",
    "expected_finite": "应为有限数字，实际为 {value!r}",
    "expected_text": "应为文本，实际为 {kind}",
    "expected_names": "应为名称列表，实际为 {value!r}",
    "nul_byte": "包含 NUL 字节",
    "not_a_choice": "必须是 {choices} 之一；实际为 {value!r}",
    "not_finite": "必须是有限数字，实际为 {value!r}",
    "above": "必须大于 {low:g}，实际为 {value!r}",
    "at_least": "不能小于 {low:g}，实际为 {value!r}",
    "at_most": "不能大于 {high:g}，实际为 {value!r}",
}


def _add_engine_messages(prefix: str, english: dict[str, str], chinese: dict[str, str]) -> None:
    """An engine error catalogue as ``<prefix><key>`` messages. English from the engine itself (the command line
    prints the same words), so each text has one source; a key without Chinese fails at import."""
    MESSAGES.update({f"{prefix}{key}": {"en": text, "zh": chinese[key]} for key, text in english.items()})


_add_engine_messages("cfg_err_", CONFIG_MESSAGES, CONFIG_ERRORS_ZH)


# DataError messages (engine.core.data.errors.DATA_MESSAGES keys) in Chinese; ja/ko/ru have DATA_ERRORS.
DATA_ERRORS_ZH = {
    "folder_empty": "文件夹中没有 json/jsonl/csv/parquet 文件",
    "file_empty": "文件为空",
    "file_blank": "文件为空（只有空白字符）",
    "json_line": "不是有效的 JSON（{error}，第 {column} 列）",
    "json": "不是有效的 JSON（第 {line} 行，第 {column} 列：{error}）",
    "not_list": "必须是由样本组成的 JSON 列表",
    "unreadable": "无法读取：{error}",
    "not_utf8": "不是 UTF-8 文本",
    "too_deep": "嵌套层级太深，无法读取",
    "unknown_stage": "未知的训练阶段 {stage!r}（可用：{stages}）",
    "no_pairs": "数据集 {name!r} 没有偏好数据对：{stage} 阶段需要带有 chosen/rejected 回答的偏好数据；"
                "请在 {registry} 中为这类数据集标注 \"ranking\": true",
    "no_labels": "数据集 {name!r} 没有标签：kto 阶段需要一个 true/false 列标明每个回答是否可取，"
                 "在 dataset_info.json 中写为 \"columns\": {example}，或使用标注了 \"ranking\": true 的偏好数据",
    "no_samples": "没有样本",
    "no_such_row": "没有第 {position} 行：共 {count} 行",
    "no_answers": "数据集 {name!r} 只有纯文本，没有可供探针打分的回答",
    "missing": "缺失",
    "not_text": "必须是文本，实际为 {kind}",
    "not_number": "必须是数字，实际为 {kind}",
    "history_not_list": "必须是由 [问题, 回答] 对组成的列表",
    "history_item": "每一项都必须是由文本组成的 [问题, 回答] 对",
    "empty_instruction": "指令为空",
    "no_turns": "必须是非空的对话轮次列表",
    "answer_not_object": "必须是一个消息对象，例如 {example}，实际为 {kind}",
    "answer_role": "必须是助手消息，实际角色为 {role!r}",
    "answer_content": "内容必须是文本",
    "turn_not_object": "第 {n} 轮必须是对象",
    "turn_role": "第 {n} 轮的角色 {role!r} 未知",
    "turn_content": "第 {n} 轮的内容必须是文本",
    "system_first": "第 {n} 轮：系统轮次只能放在最前面",
    "turn_order": "第 {n} 轮应为 {expected} 轮次，实际为 {role}",
    "ranking_ends_with_user": "偏好数据的对话轮次必须以用户的问题结尾（回答放在 chosen 和 rejected 列中）",
    "no_final_answer": "对话末尾没有助手的回答",
    "turn_no_text": "第 {n} 轮必须是带有文本内容的对象",
    "empty_text": "文本为空",
    "kto_tag": "必须是 true 或 false（1/0），实际为 {value!r:.40}",
    "row_not_object": "必须是对象，实际为 {kind}",
    "empty": "不能为空",
    "one_line": "必须是一行，最多 {limit} 个字符",
    "braces": "不能包含 {{{{ 或 }}}}",
    "extra_fact": "每条补充信息请写成：问题 | 回答",
    "reserved_name": "数据集名称 {name!r} 是数据文件夹自身文件的保留名称；请换一个名称",
    "bad_name": "数据集名称 {name!r} 不可用：请使用 1 到 64 个字母、数字、'_'、'-' 或 '.'，并以字母或数字开头",
    "no_folder": "数据文件夹不存在",
    "already_registered": "数据集 {name!r} 已注册；请换一个名称或允许覆盖",
    "file_owned": "文件 {file_name!r} 属于数据集 {owner!r}；请换一个名称",
    "file_exists": "数据文件夹中已有文件 {file_name!r}；请换一个名称或允许覆盖",
    "folder_exists": "数据文件夹中已有 {file_name!r}；请换一个名称",
    "no_registry": "此文件夹中没有 {registry}",
    "registry_empty": "文件为空；它必须是将数据集名称映射到条目的 JSON 对象",
    "registry_not_object": "必须是将数据集名称映射到条目的 JSON 对象",
    "unsupported_type": "不支持的文件类型 {suffix!r}（请使用 {suffixes}）",
    "entry_not_object": "条目必须是对象",
    "hub_dataset": "不支持 Hub 上的数据集；请下载文件并设置 file_name",
    "no_file_name": "条目没有 file_name",
    "not_registered": "数据集 {name!r} 未注册",
    "bad_path": "{error}",
    "no_file": "文件 {file_name!r} 不存在",
    "bad_formatting": "formatting 必须是 alpaca 或 sharegpt，实际为 {formatting!r}",
    "columns_not_objects": "columns 和 tags 必须是对象",
    "bad_ranking": "ranking 必须是 true 或 false，实际为 {ranking!r}",
    "too_big": "文件大小为 {size_mb:.0f} MB，超过了 {limit_mb} MB 的上限",
    "no_rows": "没有任何行",
    "empty_answer": "回答为空",
    "number_not_text": "是数字（{value}），不是文本；如果它本应是文本，请勾选“数字按文本读取”",
    "unknown_kind": "未知的格式 {kind!r}（可用：{kinds}）",
    "cannot_tell": "无法判断格式：应有 instruction/output 列（alpaca）、conversations 或 messages 列（sharegpt），"
                   "或 chosen/rejected 列（偏好数据）；文件中的列为 {columns}",
    "cannot_tell_no_columns": "无法判断格式：应有 instruction/output 列（alpaca）、conversations 或 messages 列"
                              "（sharegpt），或 chosen/rejected 列（偏好数据）；文件中没有任何列",
    "no_ranking_column": "无法按 {kind} 读取：没有 chosen 和 rejected 列（查找了 {names}；文件中的列为 {columns}）",
    "no_conversation_column": "无法按 {kind} 读取：没有对话列（查找了 {names}；文件中的列为 {columns}）",
    "no_instruction_column": "无法按 {kind} 读取：没有指令列（查找了 {names}；文件中的列为 {columns}）",
    "no_answer_column": "无法按 {kind} 读取：没有回答列（查找了 {names}；文件中的列为 {columns}）",
    "no_ranking_column_no_columns": "无法按 {kind} 读取：没有 chosen 和 rejected 列（查找了 {names}；文件中没有任何列）",
    "no_conversation_column_no_columns": "无法按 {kind} 读取：没有对话列（查找了 {names}；文件中没有任何列）",
    "no_instruction_column_no_columns": "无法按 {kind} 读取：没有指令列（查找了 {names}；文件中没有任何列）",
    "no_answer_column_no_columns": "无法按 {kind} 读取：没有回答列（查找了 {names}；文件中没有任何列）",
    "refused": "{first}；未注册任何内容",
    "refused_more": "{first}（另有 {more} 个问题）；未注册任何内容",
}
_add_engine_messages("data_err_", DATA_MESSAGES, DATA_ERRORS_ZH)

# Download failures (engine.core.download.DOWNLOAD_MESSAGES keys) in Chinese; ja/ko/ru have DOWNLOAD_ERRORS.
DOWNLOAD_ERRORS_ZH = {
    "no_network": "无法连接 {hub} 下载 {model}：没有网络连接（已下载的文件会保留，下次从这里继续）",
    "offline": "{model} 尚未下载，而离线模式已开启（{switch}）；请关闭离线模式，或选择本地文件夹",
    "not_found": "{hub} 上不存在 {model}；请检查模型 ID",
    "not_found_elsewhere": "{hub} 上不存在 {model}，但 {others} 上有：请在顶部栏选择该模型中心",
    "gated": "{hub} 上的 {model} 需要已同意其许可协议的账号：请用该中心自己的命令登录（{login}）或设置 {token_var}，"
             "然后重试",
    "gated_token": "{hub} 上的 {model} 需要已同意其许可协议的账号：请将 {token_var} 设为该账号的访问令牌，然后重试",
    "disk_full": "从 {hub} 下载 {model} 到 {folder} 时磁盘已满；请释放空间后重试（已下载的文件会保留）",
    "cancelled": "已停止从 {hub} 下载 {model}；已下载的文件会保留",
    "no_weights": "{hub} 上的 {model} 没有 safetensors 权重；TuneBoard 不加载 pickle 权重",
    "not_downloaded": "{model} 尚未从 {hub} 下载：“加载模型”（对话）或“开始”会下载它并显示进度；之后再试",
    "bad_id": "{model} 既不是本地模型文件夹，也不是 {hub} 的模型 ID（组织/名称）",
}
_add_engine_messages("load_err_download_", DOWNLOAD_MESSAGES, DOWNLOAD_ERRORS_ZH)

# Checkpoint arena errors (engine.core.arena.ARENA_MESSAGES keys) in Chinese; ja/ko/ru have ARENA_ERRORS.
ARENA_ERRORS_ZH = {
    "bad_name": "竞技场名称 {name!r} 不可用：请使用 1 到 64 个字母、数字、“_”、“-”或“.”，并以字母或数字开头",
    "bad_outcome": "未知的投票结果 {outcome!r}（可用：{outcomes}）",
    "same_model": "投票需要两个不同的模型，但两次都是 {model!r}",
    "empty_prompt": "投票需要两个模型所回答的提示词",
    "too_few_models": "请为竞技场选择至少两个不同的模型（当前 {count} 个）",
    "no_decided_votes": "竞技场 {name!r} 没有分出胜负的投票，无法写成数据集",
}
_add_engine_messages("arena_err_", ARENA_MESSAGES, ARENA_ERRORS_ZH)
MESSAGES.update({"data_where_row": {"en": DATA_WHERE["row"], "zh": "第 {row} 行"},
                 "data_where_field": {"en": DATA_WHERE["field"], "zh": "字段 {field!r}"}})


def _merge(lang: str, module) -> None:
    """Add one language module's texts (same keys as above; a key unknown here fails at import)."""
    for key, (label, info) in module.FIELD_TEXT.items():
        FIELD_TEXT[key][lang] = (label, info.replace("{allowed}", _ALLOWED))
    for key, names in module.CHOICE_TEXT.items():
        for value, label in names.items():
            CHOICE_TEXT[key][value][lang] = label
    for key, text in module.MESSAGES.items():
        MESSAGES[key][lang] = text
    for prefix, texts in (("cfg_err_", module.CONFIG_ERRORS), ("data_err_", module.DATA_ERRORS),
                          ("load_err_download_", module.DOWNLOAD_ERRORS), ("arena_err_", module.ARENA_ERRORS)):
        for key, text in texts.items():
            MESSAGES[f"{prefix}{key}"][lang] = text


for _lang, _module in (("ja", locale_ja), ("ko", locale_ko), ("ru", locale_ru)):
    _merge(_lang, _module)

# The run name and config path boxes are no config field controls, but an error about one (a PathError's field)
# names it by its label.
for _key in ("train.output_dir", "eval.output_dir"):
    FIELD_TEXT[_key] = {lang: (label, MESSAGES["output_dir_info"][lang]) for lang, label in MESSAGES["output_dir"].items()}
FIELD_TEXT["config.path"] = {lang: (label, MESSAGES["config_path_info"][lang]) for lang, label in MESSAGES["config_path"].items()}


# json's parser reasons (their English texts are Python's own words) -> their message keys. The reason is the one part
# of an invalid-JSON message that comes from Python, not from these texts; one not listed (a later Python's) is shown
# as it is.
JSON_REASONS = {entry["en"]: key for key, entry in MESSAGES.items() if key.startswith("json_reason_")}


def json_reason(lang: str, reason: str) -> str:
    """json's parser reason ``reason`` (JSONDecodeError.msg) in ``lang``."""
    return t(lang, JSON_REASONS[reason]) if reason in JSON_REASONS else reason


def t(lang: str, key: str, **kwargs) -> str:
    """The message ``key`` in ``lang`` (English if missing), formatted with ``kwargs``."""
    entry = MESSAGES[key]
    text = entry.get(lang) or entry[DEFAULT_LANG]
    return text.format(**kwargs) if kwargs else text


def field_text(lang: str, key: str) -> tuple[str, str]:
    entry = FIELD_TEXT[key]
    return entry.get(lang) or entry[DEFAULT_LANG]


def field_label(lang: str, key: str) -> str:
    """A config field's label (its dotted name where the UI has no control for it)."""
    return field_text(lang, key)[0] if key in FIELD_TEXT else key


def choice_labels(lang: str, key: str, choices) -> list[tuple[str, str]]:
    """Dropdown choices of field ``key`` as (translated label, value)."""
    names = CHOICE_TEXT.get(key, {})
    return [(names[c].get(lang, names[c][DEFAULT_LANG]) if c in names else str(c), c) for c in choices]


def plot_labels(lang: str) -> dict[str, str]:
    return {k: t(lang, f"plot_{k}") for k in ("step", "loss", "smoothed", "eval_loss", "reward", "reward_std",
                                                  "probe_score")}
