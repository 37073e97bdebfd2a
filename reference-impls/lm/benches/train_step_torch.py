"""The PyTorch eager baseline for `train_step.rs`: the identical architecture (Qwen2-shaped: RMSNorm, rotary
embeddings, grouped-query attention, SwiGLU, tied embeddings), batch, loss and AdamW, on CPU with the same number of
threads. Prints one JSON line per config, like the Rust benchmark. Used only as a speed baseline.

Run: python3 train_step_torch.py [--quick]   (needs torch; scripts/bench-train sets it up)
"""
import json
import math
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class RmsNorm(nn.Module):
    def __init__(self, size, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


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

    def forward(self, x, cos, sin, mask):
        b, t, _ = x.shape
        h = self.n1(x)
        q = self.q(h).view(b, t, self.heads, self.d).transpose(1, 2)
        k = self.k(h).view(b, t, self.kv, self.d).transpose(1, 2)
        v = self.v(h).view(b, t, self.kv, self.d).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        g = self.heads // self.kv
        k = k.repeat_interleave(g, dim=1)
        v = v.repeat_interleave(g, dim=1)
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.d) + mask
        out = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, t, -1)
        x = x + self.o(out)
        h = self.n2(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class Model(nn.Module):
    def __init__(self, vocab, hidden, layers, heads, kv, inter, theta=10000.0):
        super().__init__()
        self.embed = nn.Embedding(vocab, hidden)
        self.layers = nn.ModuleList(Layer(hidden, heads, kv, inter) for _ in range(layers))
        self.norm = RmsNorm(hidden)
        d = hidden // heads
        inv = 1.0 / theta ** (torch.arange(0, d, 2).float() / d)
        freqs = torch.outer(torch.arange(512).float(), inv)
        self.register_buffer("cos", torch.cat((freqs.cos(), freqs.cos()), -1), persistent=False)
        self.register_buffer("sin", torch.cat((freqs.sin(), freqs.sin()), -1), persistent=False)
        for p in self.parameters():
            if p.dim() >= 2:
                nn.init.normal_(p, std=0.02)

    def forward(self, ids):
        t = ids.shape[1]
        mask = torch.full((t, t), float("-inf")).triu(1)
        cos, sin = self.cos[:t], self.sin[:t]
        x = self.embed(ids)
        for layer in self.layers:
            x = layer(x, cos, sin, mask)
        return self.norm(x) @ self.embed.weight.t()  # tied lm_head


def main():
    quick = "--quick" in sys.argv
    torch.set_num_threads(int(__import__("os").environ.get("RAYON_NUM_THREADS", "2")))
    torch.manual_seed(0)
    batch, seq, vocab = 8, 128, 1024
    configs = [("toy-m", (256, 6, 8, 4, 672), 2 if quick else 6), ("20M", (512, 6, 8, 4, 1376), 1 if quick else 3)]
    for name, (hidden, layers, heads, kv, inter), steps in configs:
        model = Model(vocab, hidden, layers, heads, kv, inter)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.01)
        ids = torch.randint(0, vocab, (batch, seq))

        def step():
            logits = model(ids)
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, vocab), ids[:, 1:].reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        step()
        times = []
        for _ in range(steps):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
        median = sorted(times)[len(times) // 2]
        params = sum(p.numel() for p in model.parameters())
        print(json.dumps({"engine": "pytorch-eager", "torch": torch.__version__, "config": name, "parameters": params,
                          "batch": batch, "seq": seq, "step_seconds": round(median, 4),
                          "tokens_per_second": round(batch * seq / median)}))


if __name__ == "__main__":
    main()
