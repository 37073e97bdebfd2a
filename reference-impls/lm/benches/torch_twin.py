"""The PyTorch eager twin of `rice bench train` and `rice bench generate`: the identical network (Qwen2-shaped: RMSNorm,
rotary embeddings, grouped-query attention with QKV bias, SwiGLU, tied embeddings), sizes, batches, losses and
AdamW, printing one JSON line with the same fields. A speed baseline only: nothing in RICE Atlas trains with it.

  python3 torch_twin.py train    --size toy-m --method sft|dpo --batch 8 --seq 128 --steps 5 --device cpu|cuda --precision f32|bf16
  python3 torch_twin.py generate --size toy-m --batch 1 --prompt 128 --new-tokens 128 --device cuda --precision bf16
  python3 torch_twin.py matmul   --device cuda      # the card's measured bf16 matmul rate, for MFU
  python3 torch_twin.py parity   --checkpoint DIR --score FILE    # the twin is our network: see `parity`

bf16 training is what TRL does with `bf16=True`: f32 weights and optimizer under `torch.autocast` (matmuls in bf16,
norms and softmax in f32). bf16 generation keeps the weights themselves in bf16, as `rice bench generate` does.
"""
import argparse
import json
import math
import os
import resource
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

# name: (vocab, hidden, layers, heads, kv_heads, intermediate, rope_theta) — the sizes of `rice bench` (src/bench_cmd.rs).
SIZES = {
    "tiny": (1024, 64, 2, 4, 2, 176, 1e4),
    "toy-m": (1024, 256, 6, 8, 4, 672, 1e4),
    "20m": (1024, 512, 6, 8, 4, 1376, 1e4),
    "qwen2-0.5b": (151936, 896, 24, 14, 2, 4864, 1e6),
}


class RmsNorm(nn.Module):
    def __init__(self, size, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.eps = eps

    def forward(self, x):
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


def rotate_half(x):
    a, b = x.chunk(2, dim=-1)
    return torch.cat((-b, a), dim=-1)


class Layer(nn.Module):
    def __init__(self, hidden, heads, kv, inter):
        super().__init__()
        self.heads, self.kv, self.d = heads, kv, hidden // heads
        self.q = nn.Linear(hidden, heads * self.d, bias=True)
        self.k = nn.Linear(hidden, kv * self.d, bias=True)
        self.v = nn.Linear(hidden, kv * self.d, bias=True)
        self.o = nn.Linear(heads * self.d, hidden, bias=False)
        self.gate = nn.Linear(hidden, inter, bias=False)
        self.up = nn.Linear(hidden, inter, bias=False)
        self.down = nn.Linear(inter, hidden, bias=False)
        self.n1, self.n2 = RmsNorm(hidden), RmsNorm(hidden)

    def forward(self, x, cos, sin, mask, cache=None):
        b, t, _ = x.shape
        h = self.n1(x)
        q = self.q(h).view(b, t, self.heads, self.d).transpose(1, 2)
        k = self.k(h).view(b, t, self.kv, self.d).transpose(1, 2)
        v = self.v(h).view(b, t, self.kv, self.d).transpose(1, 2)
        cos, sin = cos.to(q.dtype), sin.to(q.dtype)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if cache is not None:
            if "k" in cache:
                k = torch.cat((cache["k"], k), dim=2)
                v = torch.cat((cache["v"], v), dim=2)
            cache["k"], cache["v"] = k, v
        g = self.heads // self.kv
        k = k.repeat_interleave(g, dim=1)
        v = v.repeat_interleave(g, dim=1)
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.d) + mask.to(q.dtype)
        probs = scores.float().softmax(-1).to(q.dtype)
        out = (probs @ v).transpose(1, 2).reshape(b, t, -1)
        x = x + self.o(out)
        h = self.n2(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class Model(nn.Module):
    def __init__(self, vocab, hidden, layers, heads, kv, inter, theta=1e4, positions=4096):
        super().__init__()
        self.embed = nn.Embedding(vocab, hidden)
        self.layers = nn.ModuleList(Layer(hidden, heads, kv, inter) for _ in range(layers))
        self.norm = RmsNorm(hidden)
        d = hidden // heads
        inv = 1.0 / theta ** (torch.arange(0, d, 2).float() / d)
        freqs = torch.outer(torch.arange(positions).float(), inv)
        self.register_buffer("cos", torch.cat((freqs.cos(), freqs.cos()), -1), persistent=False)
        self.register_buffer("sin", torch.cat((freqs.sin(), freqs.sin()), -1), persistent=False)
        for p in self.parameters():
            if p.dim() >= 2:
                nn.init.normal_(p, std=0.02)

    def forward(self, ids, caches=None, offset=0):
        t = ids.shape[1]
        mask = torch.full((t, offset + t), float("-inf"), device=ids.device).triu(offset + 1)
        cos, sin = self.cos[offset:offset + t], self.sin[offset:offset + t]
        x = self.embed(ids)
        for i, layer in enumerate(self.layers):
            x = layer(x, cos, sin, mask, None if caches is None else caches[i])
        return self.norm(x) @ self.embed.weight.t()  # tied lm_head


def build(size, device, dtype=torch.float32):
    vocab, hidden, layers, heads, kv, inter, theta = SIZES[size.lower()]
    return Model(vocab, hidden, layers, heads, kv, inter, theta).to(device=device, dtype=dtype), vocab


def sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def peak_memory(device):
    if device.startswith("cuda"):
        return {"torch_max_allocated_mb": torch.cuda.max_memory_allocated() / 2**20}
    return {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def report(args, task, params, batch, seq, seconds, tokens):
    row = {"engine": "pytorch-eager", "torch": torch.__version__, "task": task, "size": args.size,
           "device": args.device, "precision": args.precision, "parameters": params, "batch": batch, "seq": seq,
           "step_seconds": seconds, "tokens_per_second": tokens / seconds}
    row.update(peak_memory(args.device))
    print(json.dumps(row))


def logps(model, ids, mask):
    logits = model(ids)[:, :-1].float()
    tok = torch.log_softmax(logits, -1).gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
    return (tok * mask).sum(-1)


def train(args):
    torch.manual_seed(0)
    model, vocab = build(args.size, args.device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.01)
    autocast = torch.autocast(device_type=args.device.split(":")[0], dtype=torch.bfloat16,
                              enabled=args.precision == "bf16")
    b, t = args.batch, args.seq
    if args.method == "sft":
        ids = torch.randint(0, vocab, (b, t), device=args.device)

        def loss_fn():
            logits = model(ids)
            return F.cross_entropy(logits[:, :-1].reshape(-1, vocab).float(), ids[:, 1:].reshape(-1))
        rows = b
    elif args.method == "dpo":
        half = t // 2
        prompt = torch.randint(0, vocab, (b, half), device=args.device)
        chosen = torch.cat((prompt, torch.randint(0, vocab, (b, t - half), device=args.device)), 1)
        rejected = torch.cat((prompt, torch.randint(0, vocab, (b, t - half), device=args.device)), 1)
        ids = torch.cat((chosen, rejected), 0)
        mask = (torch.arange(t - 1, device=args.device) + 1 >= half).float().expand(2 * b, t - 1)
        # The frozen reference runs in every step, in the compute dtype, as in `rice bench train --method dpo`.
        ref_dtype = torch.bfloat16 if args.precision == "bf16" else torch.float32
        reference, _ = build(args.size, args.device, ref_dtype)
        reference.requires_grad_(False)

        def loss_fn():
            with torch.no_grad():
                ref = logps(reference, ids, mask)
            pol = logps(model, ids, mask)
            margin = (pol[:b] - ref[:b]) - (pol[b:] - ref[b:])
            return -F.logsigmoid(0.1 * margin).mean()
        rows = 2 * b
    else:
        raise SystemExit(f"unknown method {args.method}")

    def step():
        with autocast:
            loss = loss_fn()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(args.warmup):
        step()
    sync(args.device)
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        step()
        sync(args.device)
        times.append(time.perf_counter() - start)
    params = sum(p.numel() for p in model.parameters())
    report(args, f"train-{args.method}", params, b, t, sorted(times)[len(times) // 2], rows * t)


@torch.no_grad()
def generate(args):
    torch.manual_seed(0)
    dtype = torch.bfloat16 if args.precision == "bf16" else torch.float32
    model, vocab = build(args.size, args.device, dtype)
    prompt = torch.randint(0, vocab, (args.batch, args.prompt), device=args.device)

    def decode():
        caches = [{} for _ in model.layers]
        logits = model(prompt, caches, 0)
        offset = args.prompt
        for _ in range(args.new_tokens):
            nxt = logits[:, -1].argmax(-1, keepdim=True)
            logits = model(nxt, caches, offset)
            offset += 1
        float(logits.float().sum())

    decode()
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        decode()
        times.append(time.perf_counter() - start)
    params = sum(p.numel() for p in model.parameters())
    report(args, "generate", params, args.batch, args.prompt + args.new_tokens, sorted(times)[len(times) // 2],
           args.batch * args.new_tokens)


def matmul(args):
    n = 8192 if args.device.startswith("cuda") else 1024
    dtype = torch.bfloat16 if args.device.startswith("cuda") else torch.float32
    a = torch.randn(n, n, device=args.device, dtype=dtype)
    b = torch.randn(n, n, device=args.device, dtype=dtype)
    for _ in range(3):
        a @ b
    sync(args.device)
    reps = 50 if args.device.startswith("cuda") else 5
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(args.device)
    seconds = (time.perf_counter() - start) / reps
    print(json.dumps({"engine": "pytorch-eager", "task": "matmul", "device": args.device, "n": n,
                      "dtype": str(dtype).removeprefix("torch."), "tflops": 2 * n**3 / seconds / 1e12}))


def read_safetensors(path):
    """The tensors of a .safetensors file (8-byte header length, JSON header, raw little-endian data)."""
    data = open(path, "rb").read()
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + size])
    dtypes = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16}
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        raw = bytearray(data[8 + size + start:8 + size + end])
        out[name] = torch.frombuffer(raw, dtype=dtypes[info["dtype"]]).reshape(info["shape"])
    return out


def parity(args):
    """Loads a checkpoint written by `rice` into the twin and recomputes the completion log-probabilities of
    `rice lm score --json` (given as --score FILE): the twin computes our function, not just one of the same size."""
    cfg = json.load(open(os.path.join(args.checkpoint, "config.json")))
    if not cfg.get("tie_word_embeddings", False):
        raise SystemExit("the twin ties its embeddings; this checkpoint does not")
    model = Model(cfg["vocab_size"], cfg["hidden_size"], cfg["num_hidden_layers"], cfg["num_attention_heads"],
                  cfg.get("num_key_value_heads") or cfg["num_attention_heads"], cfg["intermediate_size"],
                  cfg.get("rope_theta", 1e4), cfg.get("max_position_embeddings", 4096))
    for norm in [model.norm] + [n for layer in model.layers for n in (layer.n1, layer.n2)]:
        norm.eps = cfg.get("rms_norm_eps", 1e-6)
    names = {"embed.weight": "model.embed_tokens.weight", "norm.weight": "model.norm.weight"}
    ours = {"q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj", "o": "self_attn.o_proj",
            "gate": "mlp.gate_proj", "up": "mlp.up_proj", "down": "mlp.down_proj",
            "n1": "input_layernorm", "n2": "post_attention_layernorm"}
    for i in range(cfg["num_hidden_layers"]):
        for twin, hf in ours.items():
            for kind in ("weight", "bias"):
                names[f"layers.{i}.{twin}.{kind}"] = f"model.layers.{i}.{hf}.{kind}"
    weights = read_safetensors(os.path.join(args.checkpoint, "model.safetensors"))
    state = {name: weights[names[name]] for name, _ in model.named_parameters()}
    model.load_state_dict(state, strict=False)
    missing = [n for n, _ in model.named_parameters() if n not in state]
    if missing:
        raise SystemExit(f"no weights for {missing}")
    score = json.load(open(args.score))
    ids, start = score["ids"], score["prompt_tokens"]
    with torch.no_grad():
        logp = model(torch.tensor([ids]))[0].log_softmax(-1)
    theirs = [logp[start - 1 + i, t].item() for i, t in enumerate(ids[start:])]
    expected = [t["logprob"] for t in score["tokens"]]
    worst = max(abs(a - b) for a, b in zip(theirs, expected))
    print(json.dumps({"task": "parity", "tokens": len(theirs), "max_abs_logprob_difference": worst,
                      "total_twin": sum(theirs), "total_rice": score["total_logprob"]}))
    if len(theirs) != len(expected) or worst > 1e-3:
        raise SystemExit(f"the twin disagrees with rice: max |Δ log p| = {worst}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("task", choices=["train", "generate", "matmul", "parity"])
    p.add_argument("--checkpoint", help="parity: a model directory written by rice")
    p.add_argument("--score", help="parity: the output of `rice lm score --json` for that model")
    p.add_argument("--size", default="toy-m", help=", ".join(SIZES))
    p.add_argument("--method", default="sft")
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--prompt", type=int, default=128)
    p.add_argument("--new-tokens", type=int, default=128)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", default="f32", choices=["f32", "bf16"])
    args = p.parse_args()
    args.size = args.size.lower()
    if args.size not in SIZES:
        raise SystemExit(f"unknown size {args.size}: use one of {', '.join(SIZES)}")
    if args.device == "cuda":
        args.device = "cuda:0"
    torch.set_num_threads(int(os.environ.get("RAYON_NUM_THREADS", os.cpu_count() or 1)))
    if args.task == "train":
        args.batch = args.batch or 8
        train(args)
    elif args.task == "generate":
        args.batch = args.batch or 1
        generate(args)
    elif args.task == "parity":
        parity(args)
    else:
        matmul(args)


if __name__ == "__main__":
    main()
