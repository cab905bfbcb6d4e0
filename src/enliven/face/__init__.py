"""Face analysis: detection, 478 landmarks, head pose, open ratios, crop and paste-back."""
