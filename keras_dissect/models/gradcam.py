"""Grad-CAM heat-maps for one class of a classifier, on a chosen feature map.

Keras 3 has no backend-neutral gradient operation, so `_gradient` contains the
one per-backend piece (TensorFlow tape, `jax.grad`, torch autograd); the
splitting of the model and the heat-map math use `keras.ops` only.
"""

import keras
import numpy as np
from keras import ops

from keras_dissect.models import classifier as classifier_lib

# Layer tapped by default: the last residual block of the ResNet-18 backbone
# (stride 32), the usual Grad-CAM choice for ResNets.
DEFAULT_FEATURE_LAYER = "stage4_block2_out"


def _node_key(operation, index):
    # Same key format as `keras.src.ops.function.make_node_key`, which marks
    # the nodes that belong to a functional model's graph.
    return f"{id(operation)}_ib-{index}"


def _contains_layer(model, layer_name):
    for layer in model.layers:
        if layer.name == layer_name:
            return True
        if isinstance(layer, keras.Model) and _contains_layer(layer, layer_name):
            return True
    return False


def _node_in(parent, sub_model):
    for index, node in enumerate(sub_model._inbound_nodes):
        if _node_key(sub_model, index) in parent._nodes:
            return node
    raise ValueError(
        f"Model {sub_model.name!r} is not called inside {parent.name!r}; "
        "Grad-CAM needs a functional classifier such as `build_classifier` makes"
    )


def _single(tensors):
    return tensors[0] if len(tensors) == 1 else tensors


def _consumed_tensor_ids(model):
    """Return the ids of the tensors that nodes of `model`'s graph read."""
    consumed = {id(tensor) for tensor in model.outputs}
    for layer in model.layers:
        for index, node in enumerate(layer._inbound_nodes):
            if _node_key(layer, index) in model._nodes:
                consumed.update(id(tensor) for tensor in node.input_tensors)
    return consumed


def split_model(model, layer_name, output_indices=None):
    """Split a functional model at a layer's output, through nested models.

    Args:
        model: functional `keras.Model`; the layer may sit inside nested
            functional models (for example the encoder of a classifier, or the
            backbone inside that encoder).
        layer_name: name of the layer whose output to split at.
        output_indices: indices into the flattened outputs of `model` that
            the second part must return; all of them by default.

    Returns:
        `(to_features, from_features)`: two callables; `from_features(
        to_features(x))` equals the selected outputs of `model(x)` in
        inference (a single tensor when one output is selected, else a list).
    """
    outputs = keras.tree.flatten(model.output)
    if output_indices is None:
        output_indices = list(range(len(outputs)))
    selected = _single([outputs[index] for index in output_indices])

    def cut(inputs, targets):
        # A nested model whose output the parent returns unchanged leaves
        # nothing to compute after it, and Keras rejects an identity graph.
        if [id(t) for t in keras.tree.flatten(inputs)] == [id(t) for t in keras.tree.flatten(targets)]:
            return lambda values: values
        try:
            return keras.Model(inputs, targets)
        except ValueError as error:
            raise ValueError(
                f"Model {model.name!r} cannot be split at layer {layer_name!r}: "
                "an output it needs does not depend on that layer. Choose a "
                f"deeper feature layer. Received: layer_name={layer_name!r}"
            ) from error

    for layer in model.layers:
        if layer.name == layer_name:
            before = keras.Model(_single(model.inputs), layer.output)
            return before, cut(layer.output, selected)

    for layer in model.layers:
        if isinstance(layer, keras.Model) and _contains_layer(layer, layer_name):
            node = _node_in(model, layer)
            consumed = _consumed_tensor_ids(model)
            used = [
                index
                for index, tensor in enumerate(node.output_tensors)
                if id(tensor) in consumed
            ]
            inner_before, inner_after = split_model(layer, layer_name, used)
            outer_before = keras.Model(_single(model.inputs), _single(node.input_tensors))
            outer_after = cut(
                _single([node.output_tensors[index] for index in used]), selected
            )

            def to_features(x):
                return inner_before(outer_before(x))

            def from_features(features):
                return outer_after(inner_after(features))

            return to_features, from_features

    names = [layer.name for layer in model.layers]
    raise ValueError(
        f"No layer named {layer_name!r} in model {model.name!r} or its nested "
        f"models. Received: layer_name={layer_name!r}; top-level layers: {names}"
    )


def _gradient(score_fn, features):
    """Return d(sum of score_fn(features)) / d(features) as a NumPy array."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        features = tf.convert_to_tensor(features)
        with tf.GradientTape() as tape:
            tape.watch(features)
            score = tf.reduce_sum(score_fn(features))
        return tape.gradient(score, features).numpy()

    if backend == "jax":
        import jax
        import jax.numpy as jnp

        gradient = jax.grad(lambda values: jnp.sum(score_fn(values)))(jnp.asarray(features))
        return np.asarray(gradient)

    if backend == "torch":
        import torch

        # convert_to_tensor places the array on the device Keras uses.
        features = keras.ops.convert_to_tensor(features)
        features = features.detach().clone().requires_grad_(True)
        score = torch.sum(score_fn(features))
        (gradient,) = torch.autograd.grad(score, features)
        return gradient.detach().cpu().numpy()

    raise ValueError(
        f"Grad-CAM supports the tensorflow, jax and torch backends. Received: backend={backend}"
    )


def grad_cam(classifier, images, class_index, feature_layer=DEFAULT_FEATURE_LAYER):
    """Compute the Grad-CAM heat-map of one class for a batch of images.

    The class score is the pre-sigmoid logit (the `"logits"` layer of
    `build_classifier`), because the gradient of a saturated probability
    vanishes. Channel weights are the spatial means of its gradient with
    respect to the feature map. The heat-map is the weighted sum of the
    channels after a ReLU, resized to the image and scaled to [0, 1] per
    image. It is all zeros where no location contributes positively.

    Args:
        classifier: model from `build_classifier` (or any functional model
            with a `"logits"` layer, else its output is used as the score).
        images: `(B, H, W, C)` images in [0, 1].
        class_index: index of the class to explain.
        feature_layer: name of the layer whose output `(B, h, w, F)` is
            explained; it may sit inside the nested encoder.

    Returns:
        NumPy array `(B, H, W)` of heat-map values in [0, 1].
    """
    images = np.asarray(images, dtype="float32")
    if images.ndim != 4:
        raise ValueError(f"`images` must have shape (B, H, W, C). Received: images.shape={images.shape}")
    num_classes = classifier.outputs[0].shape[-1]
    if not 0 <= class_index < num_classes:
        raise ValueError(
            f"`class_index` must be in [0, {num_classes}). Received: class_index={class_index}"
        )

    names = [layer.name for layer in classifier.layers]
    if classifier_lib.LOGITS_LAYER in names:
        scorer = keras.Model(
            _single(classifier.inputs), classifier.get_layer(classifier_lib.LOGITS_LAYER).output
        )
    else:
        scorer = classifier
    to_features, from_features = split_model(scorer, feature_layer)

    features = keras.ops.convert_to_numpy(to_features(images))
    if features.ndim != 4:
        raise ValueError(
            f"`feature_layer` must output a (B, h, w, F) map. Received: "
            f"feature_layer={feature_layer!r} with output shape {features.shape}"
        )

    def class_score(values):
        return from_features(values)[:, class_index]

    gradients = _gradient(class_score, features)

    weights = gradients.mean(axis=(1, 2), keepdims=True)
    heat = np.maximum((weights * features).sum(axis=-1), 0.0)
    heat = ops.convert_to_numpy(
        ops.image.resize(heat[..., None], images.shape[1:3], interpolation="bilinear")
    )[..., 0]
    heat = np.maximum(heat, 0.0)

    peak = heat.max(axis=(1, 2), keepdims=True)
    return np.where(peak > 0, heat / np.where(peak > 0, peak, 1.0), 0.0).astype("float32")
