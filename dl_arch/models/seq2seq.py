"""RNN encoder-decoder with additive (Bahdanau) attention; teacher forcing, greedy and beam search.

Encoder: embedding -> bidirectional recurrent stack (`dl_arch.models.rnn`), memory m_BSC.
Decoder step t (Bahdanau et al. 2015), with the previous state s_{t-1}:
    e_ts = v . tanh(W_k m_s + W_q s_{t-1}),  a_t = softmax over real source steps,
    c_t = sum_s a_ts m_s,  s_t = cell([embed(y_{t-1}), c_t], s_{t-1}),
    logits_t = W_o tanh(W_r [s_t, c_t, embed(y_{t-1})]).
Hoisted out of the decoder loop: the keys W_k m_s, the embedding part of the gate
projection and (with teacher forcing) the whole read-out. Inside, one fused matmul of
s_{t-1} gives both the recurrent gate pre-activations and the attention query.
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from dl_arch.config.errors import ConfigError
from dl_arch.models.layers.embed import Embed, lookup
from dl_arch.models.layers.rnn_cells import CELLS, cell_step, num_gates, state_hidden
from dl_arch.models.rnn import RecurrentStack
from dl_arch.registry import register_model

NEG_INF = -1e9


class Seq2SeqAttention(nn.Module):
    """Attention encoder-decoder; `__call__` is teacher forcing, `greedy`/`beam_search` decode."""

    src_vocab_size: int  # source token vocabulary
    tgt_vocab_size: int  # target token vocabulary
    embed_dim: int = 64  # width of the source and target token embeddings
    hidden_size: int = 128  # encoder hidden per direction and decoder hidden
    attention_dim: int = 128  # width of the additive attention's keys and queries
    readout_dim: int = 128  # width of the layer before the output projection
    cell: str = "gru"  # rnn | lstm | gru
    encoder_layers: int = 1  # stacked bidirectional encoder layers
    dropout: float = 0.0  # on embeddings and between encoder layers in training
    bos_id: int = 1  # target token that starts decoding
    eos_id: int = 2  # target token that ends a hypothesis
    pad_id: int = 0  # padding token
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    field_checks: ClassVar[dict[str, dict[str, Any]]] = {"cell": dict(choices=tuple(CELLS))}

    def setup(self) -> None:
        gates = num_gates(self.cell)
        hid, ctx = self.hidden_size, 2 * self.hidden_size
        dense = lambda n, name: nn.Dense(n, dtype=self.dtype, param_dtype=self.param_dtype,
                                         name=name)
        self.src_embed = Embed(self.src_vocab_size, self.embed_dim, dtype=self.dtype,
                               param_dtype=self.param_dtype)
        self.encoder = RecurrentStack(hid, self.encoder_layers, self.cell, bidirectional=True,
                                      dropout=self.dropout, dtype=self.dtype,
                                      param_dtype=self.param_dtype)
        self.bridge = dense(hid, "bridge")  # backward encoder state -> initial decoder state
        self.key_proj = dense(self.attention_dim, "key_proj")
        lecun = nn.initializers.lecun_normal()
        pd = self.param_dtype
        self.tgt_embedding = self.param("tgt_embed", nn.initializers.normal(1.0),
                                        (self.tgt_vocab_size, self.embed_dim), pd)
        self.w_emb = self.param("w_emb", lecun, (self.embed_dim, gates * hid), pd)
        self.w_ctx = self.param("w_ctx", lecun, (ctx, gates * hid), pd)
        self.w_hh = self.param("w_hh", nn.initializers.orthogonal(), (hid, gates * hid), pd)
        self.w_query = self.param("w_query", lecun, (hid, self.attention_dim), pd)

        def bias_init(key, shape, dtype):
            b = jnp.zeros(shape, dtype)
            return b.at[hid:2 * hid].set(1.0) if self.cell == "lstm" else b

        self.b = self.param("b", bias_init, (gates * hid,), pd)
        self.b_hn = (self.param("b_hn", nn.initializers.zeros, (hid,), pd)
                     if self.cell == "gru" else None)
        self.v = self.param("v", lecun, (self.attention_dim, 1), pd)
        zeros = nn.initializers.zeros
        self.w_readout = self.param("w_readout", lecun, (hid + ctx + self.embed_dim,
                                                         self.readout_dim), pd)
        self.b_readout = self.param("b_readout", zeros, (self.readout_dim,), pd)
        self.w_out = self.param("w_out", lecun, (self.readout_dim, self.tgt_vocab_size), pd)
        self.b_out = self.param("b_out", zeros, (self.tgt_vocab_size,), pd)
        self.drop = nn.Dropout(self.dropout)

    # ----- encoder -----
    def encode(self, src_BS: jax.Array, src_lengths_B: jax.Array, train: bool = False
               ) -> dict[str, Any]:
        """Memory, attention keys, source mask and the initial decoder state."""
        x_BSE = self.drop(self.src_embed(src_BS), deterministic=not train)
        mem_BSC, finals = self.encoder(x_BSE, src_lengths_B, train=train)
        bwd = finals[-1][1]  # the backward pass ends at step 0: a summary of the whole source
        h0_BH = jnp.tanh(self.bridge(state_hidden(self.cell, bwd)))
        state = (jnp.zeros_like(h0_BH), h0_BH) if self.cell == "lstm" else h0_BH
        mask_BS = jnp.arange(src_BS.shape[1])[None, :] < src_lengths_B[:, None]
        return {"memory": mem_BSC, "keys": self.key_proj(mem_BSC), "mask": mask_BS,
                "state": state}

    def _decoder_weights(self) -> dict[str, Any]:
        cast = lambda a: None if a is None else jnp.asarray(a, self.dtype)
        hid = self.hidden_size
        bh = None
        if self.b_hn is not None:
            bh = jnp.concatenate([jnp.zeros((2 * hid,), self.dtype), cast(self.b_hn)])[None, :]
        return {"w_hq": cast(jnp.concatenate([self.w_hh, self.w_query], axis=1)),
                "w_ctx": cast(self.w_ctx), "v": cast(self.v), "bh": bh,
                "w_emb": cast(self.w_emb), "b": cast(self.b), "embed": cast(self.tgt_embedding),
                "w_r": cast(self.w_readout), "b_r": cast(self.b_readout),
                "w_o": cast(self.w_out), "b_o": cast(self.b_out)}

    def _attend_and_step(self, w: dict[str, Any], enc: dict[str, Any], state: Any,
                         xg_BG: jax.Array) -> tuple[Any, jax.Array, jax.Array]:
        """One decoder step: attention from s_{t-1}, then the cell; pure (used inside scans)."""
        gh = xg_BG.shape[-1]
        hq = state_hidden(self.cell, state) @ w["w_hq"]
        hg_BG, q_BA = hq[:, :gh], hq[:, gh:]
        if w["bh"] is not None:
            hg_BG = hg_BG + w["bh"]
        e_BS = (jnp.tanh(enc["keys"] + q_BA[:, None, :]) @ w["v"])[..., 0]
        e_BS = jnp.where(enc["mask"], e_BS.astype(jnp.float32), NEG_INF)
        a_BS = jax.nn.softmax(e_BS, axis=-1).astype(self.dtype)
        c_BC = jnp.einsum("bs,bsc->bc", a_BS, enc["memory"])
        new = cell_step(self.cell, xg_BG + c_BC @ w["w_ctx"], hg_BG, state)
        return new, c_BC, a_BS

    @staticmethod
    def _readout(w: dict[str, Any], h: jax.Array, c: jax.Array, e: jax.Array) -> jax.Array:
        hce = jnp.concatenate([h, c, e], axis=-1)
        return jnp.tanh(hce @ w["w_r"] + w["b_r"].reshape((1,) * (hce.ndim - 1) + (-1,)))

    @staticmethod
    def _out(w: dict[str, Any], r: jax.Array) -> jax.Array:
        return (r @ w["w_o"] + w["b_o"].reshape((1,) * (r.ndim - 1) + (-1,))).astype(jnp.float32)

    # ----- teacher forcing -----
    def __call__(self, src_BS: jax.Array, src_lengths_B: jax.Array, tgt_in_BT: jax.Array, *,
                 train: bool = False, return_attention: bool = False) -> Any:
        """Logits (B, T, V) for decoder inputs `tgt_in_BT` (BOS + targets[:-1])."""
        enc = self.encode(src_BS, src_lengths_B, train)
        w = self._decoder_weights()
        e_BTE = self.drop(lookup(w["embed"], tgt_in_BT), deterministic=not train)
        xg_TBG = jnp.swapaxes(e_BTE, 0, 1) @ w["w_emb"] + w["b"][None, None, :]

        def step(state, xg_BG):
            new, c_BC, a_BS = self._attend_and_step(w, enc, state, xg_BG)
            return new, (state_hidden(self.cell, new), c_BC, a_BS)

        _, (h_TBH, c_TBC, a_TBS) = jax.lax.scan(step, enc["state"], xg_TBG)
        r_BTR = self._readout(w, jnp.swapaxes(h_TBH, 0, 1), jnp.swapaxes(c_TBC, 0, 1), e_BTE)
        logits = self._out(w, self.drop(r_BTR, deterministic=not train))
        if return_attention:
            return logits, jnp.swapaxes(a_TBS, 0, 1)
        return logits

    # ----- decoding -----
    def _token_step(self, w: dict[str, Any], enc: dict[str, Any], state: Any,
                    tok_B: jax.Array) -> tuple[Any, jax.Array, jax.Array]:
        e_BE = jnp.take(w["embed"], tok_B, axis=0)
        xg_BG = e_BE @ w["w_emb"] + w["b"][None, :]
        new, c_BC, a_BS = self._attend_and_step(w, enc, state, xg_BG)
        logits = self._out(w, self._readout(w, state_hidden(self.cell, new), c_BC, e_BE))
        return new, logits, a_BS

    def greedy(self, src_BS: jax.Array, src_lengths_B: jax.Array, max_len: int
               ) -> tuple[jax.Array, jax.Array]:
        """Greedy decoding: tokens (B, max_len) (PAD after EOS) and attention (B, max_len, S)."""
        enc = self.encode(src_BS, src_lengths_B)
        w = self._decoder_weights()
        batch = src_BS.shape[0]

        def step(carry, _):
            state, tok, done = carry
            state, logits, a_BS = self._token_step(w, enc, state, tok)
            nxt = jnp.argmax(logits, axis=-1).astype(jnp.int32)
            out = jnp.where(done, self.pad_id, nxt)
            return (state, nxt, done | (nxt == self.eos_id)), (out, a_BS)

        init = (enc["state"], jnp.full((batch,), self.bos_id, jnp.int32),
                jnp.zeros((batch,), bool))
        _, (tok_TB, a_TBS) = jax.lax.scan(step, init, None, length=max_len)
        return jnp.swapaxes(tok_TB, 0, 1), jnp.swapaxes(a_TBS, 0, 1)

    def beam_search(self, src_BS: jax.Array, src_lengths_B: jax.Array, max_len: int,
                    beam_size: int = 4, length_penalty: float = 0.6) -> jax.Array:
        """Beam search; returns the best hypothesis per example, (B, max_len), PAD after EOS.

        Scores are summed log-probabilities divided by ((5 + len) / 6) ** length_penalty
        (Wu et al. 2016); finished beams keep their score and only extend with PAD.
        """
        if beam_size < 1:
            raise ConfigError(f"beam_size={beam_size}; must be >= 1")
        batch, k = src_BS.shape[0], beam_size
        enc = self.encode(src_BS, src_lengths_B)
        tile = lambda a: jnp.repeat(a, k, axis=0)  # (B, ...) -> (B*K, ...)
        enc = jax.tree.map(tile, enc)
        w = self._decoder_weights()
        vocab = self.tgt_vocab_size

        def step(carry, t):
            state, tok_BK, score_BK, done_BK, seq_BKT, len_BK = carry
            state, logits, _ = self._token_step(w, enc, state, tok_BK.reshape(-1))
            logp_BKV = jax.nn.log_softmax(logits).reshape(batch, k, vocab)
            # A finished beam has exactly one continuation (PAD) at no cost.
            pad_only = jnp.full((vocab,), NEG_INF).at[self.pad_id].set(0.0)
            logp_BKV = jnp.where(done_BK[..., None], pad_only[None, None, :], logp_BKV)
            cand_BKV = score_BK[..., None] + logp_BKV
            top_score, top_idx = jax.lax.top_k(cand_BKV.reshape(batch, k * vocab), k)
            beam, tok = top_idx // vocab, (top_idx % vocab).astype(jnp.int32)
            gather = lambda a: jnp.take_along_axis(a, beam.reshape(batch, k, *([1] * (a.ndim - 2))),
                                                   axis=1)
            seq_BKT = gather(seq_BKT).at[:, :, t].set(tok)
            was_done = gather(done_BK)
            len_BK = gather(len_BK) + (~was_done).astype(jnp.int32)
            done_BK = was_done | (tok == self.eos_id)
            flat = (jnp.arange(batch)[:, None] * k + beam).reshape(-1)
            state = jax.tree.map(lambda s: s[flat], state)
            return (state, tok, top_score, done_BK, seq_BKT, len_BK), None

        score0 = jnp.tile(jnp.array([0.0] + [NEG_INF] * (k - 1)), (batch, 1))
        init = (enc["state"], jnp.full((batch, k), self.bos_id, jnp.int32), score0,
                jnp.zeros((batch, k), bool), jnp.full((batch, k, max_len), self.pad_id, jnp.int32),
                jnp.zeros((batch, k), jnp.int32))
        (_, _, score, _, seq, length), _ = jax.lax.scan(step, init, jnp.arange(max_len))
        norm = ((5.0 + length.astype(jnp.float32)) / 6.0) ** length_penalty
        best = jnp.argmax(score / norm, axis=1)
        return jnp.take_along_axis(seq, best[:, None, None], axis=1)[:, 0]


register_model("seq2seq_attention", Seq2SeqAttention)
register_model("seq2seq_attention-tiny", functools.partial(
    Seq2SeqAttention, embed_dim=8, hidden_size=16, attention_dim=16, readout_dim=16))
# RNNsearch-50 sizes of Bahdanau et al. 2015 (30k vocabularies, 620-d embeddings, 1000 GRU
# units, 1000-d alignment model); our read-out is a tanh layer of 500 units, not maxout.
register_model("seq2seq_attention-rnnsearch", functools.partial(
    Seq2SeqAttention, src_vocab_size=30000, tgt_vocab_size=30000, embed_dim=620,
    hidden_size=1000, attention_dim=1000, readout_dim=500, cell="gru"))
