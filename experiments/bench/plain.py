"""The plain PyTorch loops the benchmark holds genexp against: each model's training maths with no
Lightning, no logging, no callbacks, the training split already float (and on the device), batches
by indexing a random permutation.

They start from the genexp model's own modules and hyper-parameters (so both time the same network
at the same size), and each is the fastest honest way to write that maths by hand:

- `cd_rbm`: the closed-form CD-k / PCD-k update of the first RBM (the RBM, and the pretraining phase
  of every DBN form): no autograd, `rand < p` sampling, SGD with momentum and L2 on W written out.
- `supervised`, `finetune`, `cdcgan`: autograd, as anyone would write them: forward, loss, backward,
  step (the classifier's one-cycle schedule, the DBN forms' cosine lr, the GAN's d_steps and EMA).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from genexp.data.augment import random_shift


def batches(x, y, batch: int, seed: int):
    """One pass of batches (x, y) over a random permutation (the last partial batch dropped)."""
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed)).to(x.device)
    for i in range(len(x) // batch):
        idx = perm[i * batch : (i + 1) * batch]
        yield x[idx], y[idx]


def cd_rbm(model, data, batch: int, n: int) -> None:
    """CD-k / PCD-k on the model's first RBM (`rbm` or `rbms[0]`) with its lr, momentum, weight decay:

    dcost/dW = -(v0^T p(h|v0) - vk^T p(h|vk)) / B,   dcost/dhbias, dcost/dvbias likewise (free-energy
    gradient, Hinton 2002); SGD as torch.optim.SGD does it: d = g + wd W, buf = m buf + d, W -= lr buf."""
    h = model.hparams
    rbm = model.rbm if hasattr(model, "rbm") else model.rbms[0]
    lr = h.lr if "lr" in h else model.pretrain_lr[0]
    schedule = h.get("lr_schedule", "constant")
    W, hbias, vbias = (p.detach().clone() for p in (rbm.W, rbm.hbias, rbm.vbias))
    bufs = [torch.zeros_like(p) for p in (W, hbias, vbias)]
    chain = torch.zeros(batch, rbm.n_hidden, device=W.device)
    for t, (v0, _) in enumerate(data):
        v0 = v0.reshape(batch, -1)
        p0 = torch.sigmoid(torch.addmm(hbias, v0, W))
        hs = chain if rbm.persistent else torch.rand_like(p0).lt_(p0).float()
        for step in range(rbm.k):
            pv = torch.sigmoid(torch.addmm(vbias, hs, W.t()))
            vk = torch.rand_like(pv).lt_(pv).float()
            pk = torch.sigmoid(torch.addmm(hbias, vk, W))
            if rbm.persistent or step < rbm.k - 1:  # CD-k needs no last h sample
                hs = torch.rand_like(pk).lt_(pk).float()
        chain = hs
        gW = torch.mm(vk.t(), pk).sub_(torch.mm(v0.t(), p0)).div_(batch).add_(W, alpha=h.weight_decay)
        grads = (gW, (pk - p0).mean(0), (vk - v0).mean(0))
        step = lr * (1.0 - t / n if schedule == "linear" else 1.0)
        for p, g, buf in zip((W, hbias, vbias), grads, bufs, strict=True):
            if h.momentum:
                buf.mul_(h.momentum).add_(g)
                g = buf
            p.sub_(g, alpha=step)


def supervised(model, data, batch: int, n: int) -> None:
    """The classifier: random shifts, cross-entropy, AdamW with the one-cycle lr per step."""
    h = model.hparams
    opt = torch.optim.AdamW(model.parameters(), lr=h.lr, weight_decay=h.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=h.lr, total_steps=n)
    model.train()
    for xb, yb in data:
        loss = F.cross_entropy(model.net(random_shift(xb, h.max_shift)), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()


def finetune(model, data, batch: int, n: int) -> None:
    """A fine-tuned DBN form: its loss by backprop through the whole stack, AdamW, cosine lr."""
    h = model.hparams
    opt = torch.optim.AdamW(model.finetune_parameters(), lr=h.finetune_lr, weight_decay=h.finetune_weight_decay)
    model.train()
    if hasattr(model, "unroll"):
        model.unroll()
    for t, (xb, yb) in enumerate(data):
        for group in opt.param_groups:
            group["lr"] = h.finetune_lr * 0.5 * (1.0 + math.cos(math.pi * t / n))
        loss = model.losses(*model.train_batch((xb, yb)))["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def cdcgan(model, data, batch: int, n: int) -> None:
    """d_steps D updates on one detached fake batch, then one G update through a frozen D, then EMA."""
    from genexp.nn.gan import discriminator_loss, generator_loss

    h = model.hparams
    G, D, ema = model.generator, model.discriminator, model.generator_ema
    opt_d = torch.optim.Adam(D.parameters(), lr=h.lr, betas=(h.beta1, h.beta2))
    opt_g = torch.optim.Adam(G.parameters(), lr=h.lr, betas=(h.beta1, h.beta2))
    model.train()
    draw = torch.rand if h.noise == "uniform" else torch.randn
    for t, (xb, yb) in enumerate(data):
        yb = F.one_hot(yb, 10).float()
        fake = G(draw(batch, h.nz, device=xb.device), yb).detach()
        for _ in range(h.d_steps):
            d_cost = discriminator_loss(D(xb, yb), D(fake, yb))
            opt_d.zero_grad(set_to_none=True)
            d_cost.backward()
            opt_d.step()
        D.requires_grad_(False)
        g_cost = generator_loss(D(G(draw(batch, h.nz, device=xb.device), yb), yb), h.g_loss)
        opt_g.zero_grad(set_to_none=True)
        g_cost.backward()
        opt_g.step()
        D.requires_grad_(True)
        if ema is not None:
            with torch.no_grad():
                decay = min(h.ema_decay, (1 + t) / (10 + t))
                torch._foreach_lerp_(list(ema.parameters()), list(G.parameters()), 1.0 - decay)
                for e, b in zip(ema.buffers(), G.buffers(), strict=True):
                    e.copy_(b)
