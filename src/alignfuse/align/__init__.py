"""The alignment stage: measure, degrade and learn the alignment between image and text features."""
