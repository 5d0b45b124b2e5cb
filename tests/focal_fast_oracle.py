"""A plain, slow implementation of Focal-fast attention, written step by
step from ``shared/docs/focal_fast_spec.md``, to check the cached, gathered
:class:`FocalFastAttention` against.

Every call: ``torch.topk`` over all tokens for every window at once, the bias
MLPs on every (window, query, key) coordinate, explicit concatenation of the
levels, explicit softmax. It shares nothing with the project's index code;
beyond the official code it pads the map to window multiples (and up to one
window), as the module documents.
"""
import math

import torch
import torch.nn.functional as F


def _nearest(qy, qx, height, width, k):
    """The official choice: topk of minus the float32 distance to all
    tokens. Returns the flat indices and the (dy, dx) = query - key of the
    chosen tokens, each (n, k)."""
    ys, xs = torch.meshgrid(
        torch.arange(height), torch.arange(width), indexing='ij')
    dy = qy[:, None] - ys.reshape(1, -1)
    dx = qx[:, None] - xs.reshape(1, -1)
    dist = torch.sqrt(dy.float()**2 + dx.float()**2)
    index = torch.topk(-dist, k, dim=1).indices
    return index, dy.gather(1, index), dx.gather(1, index)


def _centre_fit(x, dim, size):
    diff = x.shape[dim] - size
    if diff > 0:
        return x.narrow(dim, diff // 2, size)
    if diff < 0:
        before = (-diff) // 2
        pad = [0, 0] * (x.dim() - dim - 1) + [before, -diff - before]
        return F.pad(x, pad)
    return x


def _pool(m, x, level, grid_h, grid_w):
    """Pooled map (B, grid_h, grid_w, C) of pooled level ``level``."""
    sub = m.window_size // 2**level
    x = _centre_fit(_centre_fit(x, 1, grid_h * sub), 2, grid_w * sub)
    B, C = x.shape[0], x.shape[-1]
    cells = x.view(B, grid_h, sub, grid_w, sub, C).permute(0, 1, 3, 2, 4, 5)
    if m.pool_method == 'mean':
        return cells.mean(dim=(3, 4))
    if m.pool_method == 'max':
        return cells.amax(dim=(3, 4))
    if m.pool_method == 'fc':
        cells = cells.reshape(B, grid_h, grid_w, sub * sub, C).transpose(3, 4)
        return m.pool_layers[level](cells).squeeze(-1)
    # conv
    cells = cells.reshape(-1, sub, sub, C).permute(0, 3, 1, 2)
    return m.pool_layers[level](cells).view(B, grid_h, grid_w, C)


def oracle_focal_fast_attention(m, x):
    """``m``: a FocalFastAttention (its parameters and options are used);
    ``x``: (B, H, W, C). Attention dropout is not applied."""
    B, H, W, C = x.shape
    w, heads = m.window_size, m.num_heads
    d = C // heads
    shift = 0 if min(H, W) <= w else m.shift_size
    Hp, Wp = math.ceil(H / w) * w, math.ceil(W / w) * w
    x = F.pad(x, (0, 0, 0, Wp - W, 0, Hp - H))
    x = torch.roll(x, shifts=(-shift, -shift), dims=(1, 2))
    n_rows, n_cols = Hp // w, Wp // w
    num_pooled = 0 if m.pool_method == 'none' else m.focal_level - 1
    maps = [x] + [
        _pool(m, x, k, n_rows * 2**k, n_cols * 2**k) for k in range(num_pooled)
    ]
    # One qkv linear on every map; queries of the fine map only.
    qkv = [m.qkv(t.reshape(B, -1, C)) for t in maps]
    q = qkv[0][..., :C]

    win_y = torch.arange(n_rows).repeat_interleave(n_cols)
    win_x = torch.arange(n_cols).repeat(n_rows)
    iy, ix = torch.meshgrid(torch.arange(w), torch.arange(w), indexing='ij')
    query_offset = torch.stack([iy - w // 2, ix - w // 2], -1).view(-1, 2)

    keys, values, coords = [], [], []
    f = Hp // n_rows
    index, dy, dx = _nearest(win_y * f + f // 2, win_x * f + f // 2, Hp, Wp,
                             min(m.focal_topk, Hp * Wp))
    keys.append(qkv[0][:, index, C:2 * C])  # (B, nW, K, C)
    values.append(qkv[0][:, index, 2 * C:])
    coords.append(
        torch.stack([dy, dx], -1)[:, None] + query_offset[None, :, None])
    if num_pooled:
        index, dy, dx = _nearest(win_y, win_x, n_rows, n_cols,
                                 min(m.focal_topk, n_rows * n_cols))
        for level in range(1, num_pooled + 1):
            # The grid index, used as it is on the (wider) pooled map.
            keys.append(qkv[level][:, index, C:2 * C])
            values.append(qkv[level][:, index, 2 * C:])
            coords.append(
                torch.stack([dy, dx], -1)[:, None] * w +
                query_offset[None, :, None])
    # The bias MLP of each level on every coordinate: (nW, L, K, heads).
    bias = torch.cat(
        [m.bias_mlps[level](c.to(x.dtype)) for level, c in enumerate(coords)],
        2).permute(0, 3, 1, 2)  # nW, heads, L, N

    nW, L = n_rows * n_cols, w * w
    k = torch.cat(keys, 2).view(B, nW, -1, heads, d).permute(0, 1, 3, 2, 4)
    v = torch.cat(values, 2).view(B, nW, -1, heads, d).permute(0, 1, 3, 2, 4)
    q = q.view(B, n_rows, w, n_cols, w, heads, d)
    q = q.permute(0, 1, 3, 5, 2, 4, 6).reshape(B, nW, heads, L, d)
    logits = (q * m.scale) @ k.transpose(-2, -1) + bias[None]
    out = logits.softmax(-1) @ v  # B, nW, heads, L, d
    out = out.view(B, n_rows, n_cols, heads, w, w, d)
    out = out.permute(0, 1, 4, 2, 5, 3, 6).reshape(B, Hp, Wp, C)
    out = torch.roll(m.proj(out), shifts=(shift, shift), dims=(1, 2))
    return out[:, :H, :W]
