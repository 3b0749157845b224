"""Chest X-ray data: decoding, augmentation, tf.data pipelines, label fractions.

Submodules: `decode` (PNG/JPEG/DICOM to one gray channel), `paths` (safe
paths from label files), `augment` and `pipelines` (tf.data input pipelines
for every Keras backend), `label_fractions` (patient-level low-label subsets),
`loading` (prepare and load a TFDS split), `errors`.
"""

from keras_dissect.data.decode import read_image
from keras_dissect.data.errors import DatasetLayoutError
from keras_dissect.data.errors import ImageDecodeError
from keras_dissect.data.label_fractions import filter_dataset
from keras_dissect.data.label_fractions import filter_examples
from keras_dissect.data.label_fractions import load_or_create_manifest
from keras_dissect.data.label_fractions import sample_label_fractions
from keras_dissect.data.loading import load_split
from keras_dissect.data.paths import resolve_manual_path
from keras_dissect.data.pipelines import classification_dataset
from keras_dissect.data.pipelines import pretraining_dataset
from keras_dissect.data.pipelines import segmentation_dataset
