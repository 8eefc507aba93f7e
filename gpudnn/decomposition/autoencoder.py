"""Autoencoders: an encoder and a mirrored decoder built from gpudnn layers, trained with MSE through ``fit``.

``Autoencoder(64, latent=2, hidden=(128,))`` is Dense 64->128 (activation), Dense 128->2 (latent
activation, identity by default), then Dense 2->128 (activation), Dense 128->64 (identity). With
``hidden=()`` and identity activations it is a linear autoencoder, whose optimum spans the same
subspace as PCA with ``latent`` components.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .. import checks
from ..nn.layers import Dense
from ..nn.sequential import Sequential


class Autoencoder(Sequential):
    def __init__(self, n_features: int, latent: int, hidden: Sequence[int] = (128,), *, activation: str = "relu",
                 latent_activation: str | None = None, output_activation: str | None = None,
                 dtype: Any = None) -> None:
        widths = [checks.positive_int("n_features", n_features),
                  *(checks.positive_int(f"hidden[{i}]", w) for i, w in enumerate(hidden)),
                  checks.positive_int("latent", latent)]
        encoder = [Dense(a, b, activation=activation if i < len(hidden) else latent_activation, dtype=dtype)
                   for i, (a, b) in enumerate(zip(widths, widths[1:]))]
        back = widths[::-1]
        decoder = [Dense(a, b, activation=activation if i < len(hidden) else output_activation, dtype=dtype)
                   for i, (a, b) in enumerate(zip(back, back[1:]))]
        super().__init__(*encoder, *decoder)
        self.n_encoder_layers = len(encoder)
        self._spec = {"n_features": n_features, "latent": latent, "hidden": list(hidden), "activation": activation,
                      "latent_activation": latent_activation, "output_activation": output_activation,
                      "dtype": str(encoder[0].W.data.dtype)}

    def encode(self, x: Any) -> Any:
        """Latent codes (batch, latent) in inference mode."""
        for layer in self.layers[:self.n_encoder_layers]:
            x = layer.forward(x, train=False)
        return x

    def decode(self, z: Any) -> Any:
        """Reconstructions (batch, n_features) from latent codes, in inference mode."""
        for layer in self.layers[self.n_encoder_layers:]:
            z = layer.forward(z, train=False)
        return z

    def config(self) -> dict[str, Any]:
        return {"type": "Autoencoder", **self._spec}

    @classmethod
    def _from_spec(cls, spec: dict[str, Any]) -> Autoencoder:
        return cls(**spec)
