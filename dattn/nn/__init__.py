"""The DAttention block and its LayerNorm helper."""

from dattn.nn.dattention import DAttention, LayerNormProxy

__all__ = ["DAttention", "LayerNormProxy"]
