"""A plain, slow implementation of focal self-attention, written step by step
from ``shared/docs/focal_attention_spec.md`` with rolls, unfolds and explicit
softmax, to check the gather-based :class:`FocalAttention` against.

It shares nothing with the project's index code: every position and relative
offset is computed here from coordinates.
"""
import math

import torch
import torch.nn.functional as F


def _windows(t, w, heads):
    """(B, Hp, Wp, C) -> (B * nW, heads, w * w, d), windows row-major."""
    B, Hp, Wp, C = t.shape
    t = t.view(B, Hp // w, w, Wp // w, w, heads, C // heads)
    return t.permute(0, 1, 3, 5, 2, 4, 6).reshape(-1, heads, w * w, C // heads)


def _relative_bias(table, q_side, k_side):
    """Bias of every (query, key) pair of a q_side square of queries and a
    k_side square of keys, from a head-major (heads, (q+k-1)^2) table."""
    span = q_side + k_side - 1
    rows = []
    for qy in range(q_side):
        for qx in range(q_side):
            row = []
            for ky in range(k_side):
                for kx in range(k_side):
                    row.append((qy - ky + k_side - 1) * span +
                               (qx - kx + k_side - 1))
            rows.append(row)
    return table[:, torch.tensor(rows)]  # heads, q^2, k^2


def _centre_fit(x, dim, size):
    diff = x.shape[dim] - size
    if diff > 0:
        start = diff // 2
        return x.narrow(dim, start, size)
    if diff < 0:
        before = (-diff) // 2
        after = -diff - before
        pad = [0, 0] * (x.dim() - dim - 1) + [before, after]
        return F.pad(x, pad)
    return x


def _pool(m, x, level):
    B, Hp, Wp, C = x.shape
    w = m.window_size
    sub = w // 2**level
    grid_h = math.ceil(Hp / w) * 2**level
    grid_w = math.ceil(Wp / w) * 2**level
    x = _centre_fit(_centre_fit(x, 1, grid_h * sub), 2, grid_w * sub)
    cells = x.view(B, grid_h, sub, grid_w, sub, C).permute(0, 1, 3, 2, 4, 5)
    if m.pool_method == 'mean':
        return cells.mean(dim=(3, 4))
    if m.pool_method == 'max':
        return cells.amax(dim=(3, 4))
    if m.pool_method == 'fc':
        flat = cells.reshape(B, grid_h, grid_w, sub * sub, C).transpose(3, 4)
        return m.pool_layers[level](flat).squeeze(-1)
    conv = m.pool_layers[level]
    flat = cells.reshape(-1, sub, sub, C).permute(0, 3, 1, 2)
    return conv(flat).view(B, grid_h, grid_w, C)


def _region_mask(Hp, Wp, w, s):
    labels = torch.zeros(Hp, Wp)
    cnt = 0
    for hs in (slice(0, Hp - w), slice(Hp - w, Hp - s), slice(Hp - s, Hp)):
        for ws in (slice(0, Wp - w), slice(Wp - w, Wp - s), slice(Wp - s, Wp)):
            labels[hs, ws] = cnt
            cnt += 1
    lw = labels.view(Hp // w, w, Wp // w, w).permute(0, 2, 1,
                                                     3).reshape(-1, w * w)
    diff = lw[:, :, None] - lw[:, None, :]
    return torch.where(diff != 0, -100.0, 0.0)  # nW, L, L


def oracle_focal_attention(m, x):
    """Output of FocalAttention ``m`` on ``x`` (B, H, W, C), the slow way."""
    B, H, W, C = x.shape
    w, heads = m.window_size, m.num_heads
    small = min(H, W) <= w
    e = 0 if small else m.expand_size
    s = 0 if small else m.shift_size
    Hp, Wp = math.ceil(H / w) * w, math.ceil(W / w) * w
    x = F.pad(x, (0, 0, 0, Wp - W, 0, Hp - H))
    if s:
        x = torch.roll(x, (-s, -s), (1, 2))
    q, k, v = m.qkv(x).chunk(3, dim=-1)
    qw = _windows(q, w, heads) * m.scale
    keys, values = [_windows(k, w, heads)], [_windows(v, w, heads)]
    biases = [_relative_bias(m.relative_position_bias_table.t(), w, w)]
    masks = [torch.zeros(keys[0].shape[0], w * w, w * w, dtype=x.dtype)]
    if s:
        masks[0] = _region_mask(Hp, Wp, w, s).to(x.dtype).repeat(B, 1, 1)

    if e:
        ks, vs = [], []
        for sy, sx in ((-e, -e), (-e, e), (e, -e), (e, e)):
            keep = []
            for i in range(w):
                for j in range(w):
                    # The token this slot shows, relative to the window.
                    y, xx = i - sy, j - sx
                    keep.append(not (0 <= y < w and 0 <= xx < w))
            keep = torch.tensor(keep)
            ks.append(
                _windows(torch.roll(k, (sy, sx), (1, 2)), w, heads)[:, :,
                                                                    keep])
            vs.append(
                _windows(torch.roll(v, (sy, sx), (1, 2)), w, heads)[:, :,
                                                                    keep])
        keys.append(torch.cat(ks, 2))
        values.append(torch.cat(vs, 2))
        biases.append(m.relative_position_bias_table_to_neighbors[0])
        masks.append(
            torch.zeros(
                masks[0].shape[0], w * w, keys[-1].shape[2], dtype=x.dtype))

    for level, fw in enumerate(m.pooled_windows):
        stride = 2**level
        pooled = _pool(m, x, level)  # B, gh, gw, C
        _, pk, pv = m.qkv(pooled).chunk(3, dim=-1)
        kernel = 2 * (fw // 2) + 2**(level + 1) - 1
        gh, gw = pooled.shape[1:3]

        def unfold(t):
            cols = F.unfold(
                t.permute(0, 3, 1, 2),
                kernel,
                padding=kernel // 2,
                stride=stride)  # B, C*K*K, nW
            cols = cols.view(t.shape[0], t.shape[-1], kernel, kernel, -1)
            cols = cols[:, :, stride - 1:, stride - 1:]
            return cols.permute(0, 4, 2, 3,
                                1).reshape(cols.shape[0] * cols.shape[-1], -1,
                                           t.shape[-1])

        ones = torch.ones(1, gh, gw, 1, dtype=x.dtype)
        valid = unfold(ones)[..., 0]  # nW, K'^2
        pk_w, pv_w = unfold(pk), unfold(pv)
        n = pk_w.shape[1]
        keys.append(pk_w.view(-1, n, heads, C // heads).transpose(1, 2))
        values.append(pv_w.view(-1, n, heads, C // heads).transpose(1, 2))
        extent = fw + 2**level - 1
        biases.append(
            _relative_bias(m.relative_position_bias_table_to_windows[level], w,
                           extent))
        mask = torch.where(valid == 0, -100.0, 0.0).to(x.dtype)
        masks.append(mask[:, None, :].expand(-1, w * w, -1).repeat(B, 1, 1))

    keys, values = torch.cat(keys, 2), torch.cat(values, 2)
    logits = qw @ keys.transpose(-2, -1)
    logits = logits + torch.cat(biases, -1).unsqueeze(0)
    logits = logits + torch.cat(masks, -1).unsqueeze(1)
    out = logits.softmax(-1) @ values  # B*nW, heads, L, d
    out = out.transpose(1, 2).reshape(B, Hp // w, Wp // w, w, w, C)
    out = m.proj(out).permute(0, 1, 3, 2, 4, 5).reshape(B, Hp, Wp, C)
    if s:
        out = torch.roll(out, (s, s), (1, 2))
    return out[:, :H, :W]
