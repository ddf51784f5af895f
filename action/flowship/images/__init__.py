"""Images: content-addressed deps images and a thin code image per commit.

`inputs` is pure (the planner uses it); `build` talks to Docker and the
registry and imports the docker SDK only when it runs.
"""

from flowship.images.build import BuildResult, FamilyImages, build_images
from flowship.images.inputs import deps_tag, family_inputs
from flowship.images.render import CODE_DIR

__all__ = ["CODE_DIR", "BuildResult", "FamilyImages", "build_images", "deps_tag", "family_inputs"]
