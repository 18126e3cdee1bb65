"""In-app notifications ("notices") of one user: the header's bell and the /notifications page."""
