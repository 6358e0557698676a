"""What a registered model carries besides the estimator: its store metadata keys and its files.

The pipeline writes them (pipeline/register.py, pipeline/promote.py); the service reads them
(service/models.py, service/explain.py). Both spell them from here.
"""

MODEL_NAME = "admissions"  # the store name of every model this project registers

# Keys of the model's store metadata (``bentoml models get``).
INTERVALS_KEY = "intervals"  # {"half_widths": {level: width}, "default_level": level, "coverage": {...}}
EXPLAINER_KEY = "explainer"  # {"feature_means": {feature: training mean}}
METRICS_KEY = "metrics"  # {"cv": {...}, "test": {...}}
CANDIDATE_KEY = "candidate"  # the candidate SelectModel chose
MANIFEST_KEY = "manifest"  # the registering task's manifest, in short

# Files in the model's folder (exports and Bentos copy the folder, so they travel with the model).
CARD_FILE = "model_card.md"  # the model card, Markdown
LINEAGE_FILE = "lineage.json"  # every upstream task's manifest
PROFILE_FILE = "training_profile.json"  # per-column profile of the training data (drift, the gate's PSI)
PROMOTION_FILE = "promotion.json"  # written when the model is made champion
