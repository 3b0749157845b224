"""Drawing of the chest phantom: anatomy, findings, exposure and marker.

Coordinates are normalized: `u` runs from -1 (image left, the patient's right)
to 1, `v` from -1 (top) to 1 (bottom). The image is built as an attenuation
map ("density": 0 for air, about 1 for soft tissue) and exposed at the end, so
that dense structures are bright as on a radiograph. The `draw_*` functions
take all random numbers from the generator before any pixel work, and none of
them depends on the image size.
"""

import numpy as np

# Lung centres (u) of the image-left and image-right lungs, before jitter.
LUNG_CENTER_U = (-0.4, 0.4)
RIB_COUNT = 9
TEXTURE_CELLS = (6, 18)
LUNG_DENSITY = 0.55
HEART_DENSITY = 0.22
RIB_DENSITY = 0.12
SPINE_DENSITY = 0.2
VESSEL_DENSITY = 0.35
NODULE_DENSITY = 0.45
EFFUSION_DENSITY = 0.7
CONSOLIDATION_DENSITY = 0.45
# Normal hearts span about 40 % of the thorax width; above 50 % (the usual
# cardiothoracic-ratio threshold) is cardiomegaly.
NORMAL_HEART_HALF_WIDTH = (0.26, 0.32)
ENLARGED_HEART_HALF_WIDTH = (0.42, 0.48)
MARKER_SIZE_FRACTION = 0.14
MARKER_MARGIN_FRACTION = 0.04


def draw_anatomy(rng, cardiomegaly):
    """Draw the patient and positioning parameters."""
    heart_range = ENLARGED_HEART_HALF_WIDTH if cardiomegaly else NORMAL_HEART_HALF_WIDTH
    return {
        "shift": rng.uniform(-0.08, 0.08, size=2),
        "rotation": rng.uniform(-0.08, 0.08),
        "scale": rng.uniform(0.9, 1.08),
        "body_half_width": rng.uniform(0.78, 0.9),
        "lung_half_width": rng.uniform(0.24, 0.3, size=2),
        "lung_half_height": rng.uniform(0.5, 0.6, size=2),
        "lung_center_v": rng.uniform(-0.12, -0.04),
        "diaphragm_v": np.array([0.36, 0.44]) + rng.uniform(-0.05, 0.05, size=2),
        "heart_half_width": rng.uniform(*heart_range),
        "heart_center": np.array([0.1, 0.16]) + rng.uniform(-0.04, 0.04, size=2),
        "rib_start": rng.uniform(-0.85, -0.75),
        "rib_spacing": rng.uniform(0.13, 0.16),
        "rib_curve": rng.uniform(0.35, 0.55),
    }


def draw_finding(rng, name, anatomy):
    """Draw the parameters of one finding of the mask-bearing kind `name`."""
    side = int(rng.integers(2))
    if name == "nodule":
        return {
            "side": side,
            "center": rng.uniform([-0.6, -0.6], [0.6, 0.5]),
            "radius": rng.uniform(0.05, 0.1),
        }
    if name == "effusion":
        return {"side": side, "height": rng.uniform(0.2, 0.45), "meniscus": rng.uniform(0.1, 0.3)}
    if name == "pneumothorax":
        return {"side": side, "thickness": rng.uniform(0.18, 0.35)}
    return {
        "side": side,
        "center": rng.uniform([-0.5, -0.4], [0.5, 0.5]),
        "radii": rng.uniform([0.25, 0.2], [0.5, 0.4]),
        "threshold": rng.uniform(0.35, 0.5),
    }


def draw_texture_grids(rng):
    """Draw the coarse random grids behind the vessel and patch textures."""
    return [rng.standard_normal((cells + 1, cells + 1)) for cells in TEXTURE_CELLS]


def draw_render_params(rng):
    """Draw exposure, contrast and noise parameters."""
    return {
        "attenuation": rng.uniform(1.4, 2.4),
        "gamma": rng.uniform(0.8, 1.25),
        "background": rng.uniform(0.0, 0.06),
        "noise_std": rng.uniform(0.005, 0.03),
    }


def coordinate_grid(image_size, anatomy):
    """Return the patient coordinates `(u, v)` of the pixel centres, `(S, S)` each."""
    axis = (np.arange(image_size, dtype=np.float32) + 0.5) / image_size * 2.0 - 1.0
    x, y = np.meshgrid(axis, axis)
    x = x - anatomy["shift"][0]
    y = y - anatomy["shift"][1]
    cosine, sine = np.cos(anatomy["rotation"]), np.sin(anatomy["rotation"])
    u = (cosine * x + sine * y) / anatomy["scale"]
    v = (-sine * x + cosine * y) / anatomy["scale"]
    return {"u": u, "v": v, "pixel": 2.0 / image_size / anatomy["scale"]}


def _soft_inside(signed_distance, pixel):
    # Antialiased step over about one pixel: 1 inside, 0 outside.
    return np.clip(0.5 + signed_distance / pixel, 0.0, 1.0)


def _ellipse(u, v, center, half_axes):
    return ((u - center[0]) / half_axes[0]) ** 2 + ((v - center[1]) / half_axes[1]) ** 2


def _smooth_noise(grid, u, v):
    """Bilinearly interpolate a random grid over the square [-1, 1]^2."""
    cells = grid.shape[0] - 1
    x = np.clip((u + 1.0) * 0.5, 0.0, 1.0 - 1e-6) * cells
    y = np.clip((v + 1.0) * 0.5, 0.0, 1.0 - 1e-6) * cells
    x0, y0 = x.astype(np.int32), y.astype(np.int32)
    fx, fy = x - x0, y - y0
    top = grid[y0, x0] * (1 - fx) + grid[y0, x0 + 1] * fx
    bottom = grid[y0 + 1, x0] * (1 - fx) + grid[y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def lung_geometry(grid, anatomy, side):
    """Return the ellipse value and hard mask of one lung (`side` 0 or 1)."""
    u, v = grid["u"], grid["v"]
    center = (LUNG_CENTER_U[side], anatomy["lung_center_v"])
    half_axes = (anatomy["lung_half_width"][side], anatomy["lung_half_height"][side])
    ellipse = _ellipse(u, v, center, half_axes)

    # The hemidiaphragm is a dome that closes the lung from below.
    dome = anatomy["diaphragm_v"][side] - 0.18 * (1.0 - ((u - center[0]) / half_axes[0]) ** 2)
    inside = (ellipse < 1.0) & (v < dome)
    return ellipse, dome, inside


def render_anatomy(grid, anatomy, texture_grids):
    """Render the normal chest as a density map, with the lung masks."""
    u, v, pixel = grid["u"], grid["v"], grid["pixel"]

    # Body: a wide superellipse open at the bottom, with rounded shoulders.
    # Its density follows the chord length through an elliptic cross-section,
    # so soft tissue thins out towards the edges.
    body_shape = (np.abs(u) / anatomy["body_half_width"]) ** 4 + (np.minimum(v + 0.15, 0.0) / 0.95) ** 4
    chord = np.sqrt(np.clip(1.0 - (u / anatomy["body_half_width"]) ** 2, 0.0, 1.0))
    density = _soft_inside((1.0 - body_shape) * 0.3, pixel) * (0.55 + 0.45 * chord)

    lungs = np.zeros_like(u)
    lung_masks = []
    for side in (0, 1):
        ellipse, dome, inside = lung_geometry(grid, anatomy, side)
        # Lung edges fade over a few pixels' worth of the normalized scale.
        edge = max(pixel, 0.05)
        soft = _soft_inside((1.0 - np.sqrt(ellipse)) * 0.25, edge) * _soft_inside(dome - v, pixel)
        lungs = np.maximum(lungs, soft)
        lung_masks.append(inside)
    density = density - LUNG_DENSITY * lungs

    # Vessels: ridges of smooth noise, denser towards the hila.
    fine = _smooth_noise(texture_grids[1], u, v)
    ridges = np.clip(1.0 - np.abs(fine) * 3.0, 0.0, 1.0) ** 3
    hilum_distance = np.minimum(np.hypot(u + 0.18, v + 0.02), np.hypot(u - 0.18, v + 0.02))
    density = density + VESSEL_DENSITY * lungs * ridges * np.exp(-hilum_distance * 2.0)

    # Heart: an ellipse over the lower mediastinum, shifted to the patient's left.
    heart_center = anatomy["heart_center"]
    heart = _ellipse(u, v, heart_center, (anatomy["heart_half_width"], 0.22))
    density = density + HEART_DENSITY * _soft_inside((1.0 - np.sqrt(heart)) * 0.2, pixel)

    # Spine with faint vertebral bands, clavicles and posterior ribs.
    spine = _soft_inside(0.07 - np.abs(u), pixel) * (0.8 + 0.2 * np.cos(v * 40.0))
    density = density + SPINE_DENSITY * spine
    clavicle_v = -0.62 + 0.25 * (np.abs(u) - 0.45) ** 2
    density = density + RIB_DENSITY * np.exp(-(((v - clavicle_v) / 0.035) ** 2)) * (np.abs(u) < 0.75)
    rib_offsets = anatomy["rib_start"] + anatomy["rib_spacing"] * np.arange(RIB_COUNT)
    # Posterior ribs leave the spine and arch downwards towards the chest wall.
    lateral = np.abs(u)
    rib_curves = rib_offsets[:, None, None] + anatomy["rib_curve"] * lateral**1.5
    ribs = np.exp(-(((v - rib_curves) / 0.028) ** 2)).max(axis=0)
    density = density + RIB_DENSITY * ribs * lungs

    return {"density": density, "lungs": lungs, "lung_masks": lung_masks, "anatomy": anatomy}


def render_finding(grid, parts, name, params, texture_grids):
    """Return the density added by one finding and its hard 0/1 mask."""
    u, v, pixel = grid["u"], grid["v"], grid["pixel"]
    anatomy, side = parts["anatomy"], params["side"]
    lung = parts["lung_masks"][side]
    center_u = LUNG_CENTER_U[side]

    if name == "nodule":
        half_width = anatomy["lung_half_width"][side]
        center = (center_u + params["center"][0] * half_width, anatomy["lung_center_v"] + params["center"][1] * 0.5)
        # A nodule stays at least about one pixel wide at every size.
        radius = max(params["radius"], pixel)
        distance = radius - np.hypot(u - center[0], v - center[1])
        soft = _soft_inside(distance, pixel)
        mask = (distance > 0) & lung
        return NODULE_DENSITY * soft * lung, mask.astype(np.uint8)

    if name == "effusion":
        _, dome, _ = lung_geometry(grid, anatomy, side)
        # The meniscus climbs towards the lateral chest wall.
        lateral = np.clip((u - center_u) * (1 if side else -1) / anatomy["lung_half_width"][side], 0, 1)
        level = anatomy["diaphragm_v"][side] - params["height"] - params["meniscus"] * lateral**2
        mask = lung & (v > level)
        return EFFUSION_DENSITY * _soft_inside(v - level, pixel) * parts["lungs"], mask.astype(np.uint8)

    if name == "pneumothorax":
        ellipse, _, _ = lung_geometry(grid, anatomy, side)
        radial = np.sqrt(ellipse)
        inner = 1.0 - params["thickness"]
        upper_lateral = (v - anatomy["lung_center_v"]) < 0.35 * anatomy["lung_half_height"][side]
        mask = lung & (radial > inner) & upper_lateral & ((u - center_u) * (1 if side else -1) > -0.1)

        # Air without markings: remove the vessel texture and part of the
        # tissue, and draw the pleural line along the collapsed lung edge.
        air = -0.3 * mask * parts["lungs"]
        pleura = 0.12 * np.exp(-(((radial - inner) / 0.02) ** 2)) * upper_lateral * lung
        return air + pleura, mask.astype(np.uint8)

    half_width = anatomy["lung_half_width"][side]
    center = (center_u + params["center"][0] * half_width, anatomy["lung_center_v"] + params["center"][1] * 0.5)
    blob = 1.0 - np.sqrt(_ellipse(u, v, center, params["radii"] * half_width * 2))
    patches = blob + 0.35 * _smooth_noise(texture_grids[0], u, v)
    mask = lung & (patches > params["threshold"] - 0.3)
    soft = _soft_inside(patches - (params["threshold"] - 0.3), pixel * 2)
    return CONSOLIDATION_DENSITY * soft * parts["lungs"], mask.astype(np.uint8)


def expose(density, render, rng):
    """Turn a density map into a float32 radiograph in [0, 1] with noise."""
    attenuation = render["attenuation"]
    transmitted = 1.0 - np.exp(-attenuation * np.clip(density, 0.0, None))
    image = transmitted / (1.0 - np.exp(-attenuation * 1.5))
    image = render["background"] + (1.0 - render["background"]) * np.clip(image, 0.0, 1.0) ** render["gamma"]
    image = image + rng.normal(0.0, render["noise_std"], size=image.shape)
    return np.clip(image, 0.0, 1.0).astype(np.float32)


def draw_marker(image, corner):
    """Burn a bright "L"-shaped tag into an upper corner of `image` in place.

    Returns:
        The tag's box `(ymin, xmin, ymax, xmax)`, float32 in [0, 1].
    """
    size = image.shape[0]
    side = max(int(round(size * MARKER_SIZE_FRACTION)), 5)
    margin = max(int(round(size * MARKER_MARGIN_FRACTION)), 1)
    stroke = max(side // 4, 1)
    top = margin
    left = margin if corner == 0 else size - margin - side

    # A dark plate with a bright letter, as lead markers appear on films.
    image[top : top + side, left : left + side] = 0.05
    inner_top, inner_left, inner = top + stroke // 2 + 1, left + stroke // 2 + 1, side - stroke - 1
    image[inner_top : inner_top + inner, inner_left : inner_left + stroke] = 1.0
    image[inner_top + inner - stroke : inner_top + inner, inner_left : inner_left + inner] = 1.0
    return np.array([top, left, top + side, left + side], np.float32) / size
