"""The ``synthetic`` encoder library: a latent-variable generator of image and text features whose
alignment is known and set by hand.

It writes the same feature files as the real encoders, over the synthetic dataset's ids
(:mod:`alignfuse.data.synthetic`), so every later stage is shared. Matched image and caption vectors share a semantic latent; the ``rotation`` of a
synthetic encoder only rotates the text features, so the information stays the same while the
coordinate correspondence goes from exact (0) to none (1).

The generator, with k = ``latent_dim``, p = ``private_dim``, D = max(``d_image``, ``d_text``)::

    z_i   ~ N(0, I_k)                                  shared semantic latent of image i
    u_i   ~ N(0, I_p)                                  image-private latent
    z_ij  = z_i + caption_noise * eps_ij,  eps_ij ~ N(0, I_k)   latent of caption j of image i
    w_ij  ~ N(0, I_p)                                  text-private latent
    A     = [S | P_v | P_t]                            D x (k + 2p), Haar-random orthonormal columns
    v_i   = (S_v z_i + private_scale * P_v u_i + noise * xi_i) / c_v
    t_ij  = Q(rotation) (S_t z_ij + private_scale * P_t w_ij + noise * xi'_ij) / c_t

S_v, P_v are the first ``d_image`` rows of S, P_v; S_t, P_t the first ``d_text`` rows of S, P_t
(so with d_image == d_text matched vectors share coordinates); xi_i ~ N(0, I_{d_image}) and
xi'_ij ~ N(0, I_{d_text}). The constants c_v = sqrt(|S_v|_F^2 + private_scale^2 |P_v|_F^2 +
noise^2 d_image) and c_t = sqrt((1 + caption_noise^2) |S_t|_F^2 + private_scale^2 |P_t|_F^2 +
noise^2 d_text) are the root expected squared norms, so vectors have unit norm on average.
Q(rotation) is ``fractional_rotation(d_text, rotation, rotation_seed(cfg))``. Every draw depends
on the config alone, never on the rotation: encoders of one config see identical latents.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import alignfuse
from alignfuse.data.datasets import check_synthetic
from alignfuse.data.synthetic import caption_ids, image_ids
from alignfuse.parquet import write_embeddings
from alignfuse.rotation import fractional_rotation, haar_frame

# Independent random streams, one per kind of draw: np.random.default_rng([seed, stream]).
LATENTS, MAP, IMAGE_NOISE, TEXT_NOISE, ROTATION = range(5)


def rotation_seed(cfg: dict) -> int:
    """The seed of the text rotation Q, derived from the generator's seed."""
    return int(np.random.SeedSequence([cfg["seed"], ROTATION]).generate_state(1)[0])


def stream(cfg: dict, which: int) -> np.random.Generator:
    return np.random.default_rng([cfg["seed"], which])


def synthetic_features(
    cfg: dict, rotation: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(image ids, V [n_images, d_image], caption ids, T [n_captions, d_text]), float32."""
    check_synthetic(cfg)
    n, per_image = cfg["n_images"], cfg["captions_per_image"]
    k, p, d_image, d_text = cfg["latent_dim"], cfg["private_dim"], cfg["d_image"], cfg["d_text"]
    scale, noise, caption_noise = cfg["private_scale"], cfg["noise"], cfg["caption_noise"]

    latents = stream(cfg, LATENTS)
    z = latents.standard_normal((n, k))
    u = latents.standard_normal((n, p))
    z_caption = np.repeat(z, per_image, axis=0) + caption_noise * latents.standard_normal(
        (n * per_image, k)
    )
    w = latents.standard_normal((n * per_image, p))

    a = haar_frame(max(d_image, d_text), k + 2 * p, stream(cfg, MAP))
    s, p_v, p_t = a[:, :k], a[:, k : k + p], a[:, k + p :]
    s_v, p_v, s_t, p_t = s[:d_image], p_v[:d_image], s[:d_text], p_t[:d_text]

    v = z @ s_v.T + scale * u @ p_v.T
    v += noise * stream(cfg, IMAGE_NOISE).standard_normal(v.shape)
    v /= np.sqrt(np.sum(s_v**2) + scale**2 * np.sum(p_v**2) + noise**2 * d_image)

    t = z_caption @ s_t.T + scale * w @ p_t.T
    t += noise * stream(cfg, TEXT_NOISE).standard_normal(t.shape)
    t /= np.sqrt(
        (1 + caption_noise**2) * np.sum(s_t**2) + scale**2 * np.sum(p_t**2) + noise**2 * d_text
    )
    t = t @ fractional_rotation(d_text, rotation, rotation_seed(cfg)).T

    return image_ids(cfg), v.astype(np.float32), caption_ids(cfg), t.astype(np.float32)


def write_features(
    cfg: dict, encoder: str, rotation: float, image_out: Path, text_out: Path
) -> None:
    """Write one synthetic encoder's image and text feature files."""
    ids_img, v, ids_cap, t = synthetic_features(cfg, rotation)
    metadata = {
        "encoder": encoder,
        "library": "synthetic",
        "rotation": rotation,
        "generator": cfg,
        "alignfuse": alignfuse.__version__,
    }
    write_embeddings(image_out, "image_id", ids_img, v, metadata)
    write_embeddings(text_out, "caption_id", ids_cap, t, metadata)
