"""Procedural chest X-ray phantom dataset builder."""

from keras_dissect_tfds.cxr_phantom.cxr_phantom import PHANTOM_FINDINGS
from keras_dissect_tfds.cxr_phantom.cxr_phantom import CxrPhantom
from keras_dissect_tfds.cxr_phantom.cxr_phantom import CxrPhantomConfig
