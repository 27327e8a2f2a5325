"""Synthetic QSM/FLAIR cohorts with labelled rim+ and rim- multiple-sclerosis lesions.

No public dataset of rim-labelled lesions exists, so :func:`make_phantom_cohort` writes a
cohort that :func:`rimclf.load_cohort` reads, as a BIDS dataset that pybids indexes completely
(with validation): raw ``sub-<label>/[ses-<label>/]anat/sub-<label>[_ses-<label>]_{Chimap,FLAIR}.nii.gz`` with JSON
sidecars (the Chimap's says ``"Units": "ppb"``), ``participants.tsv`` and ``.json``, and a
derivatives pipeline, ``derivatives/phantom/`` (:data:`PIPELINE_FOLDER`), holding the lesion
masks (``*_desc-lesions_dseg.nii.gz``, instance labels), ``rims.tsv``, ``phantom_lesions.tsv`` and
``phantom.json`` (:func:`read_provenance`). It is the data of the demo, the tests, the benchmarks
and the notebooks.

Generative model
----------------
Every subject is drawn from its own random stream, ``SeedSequence(random_state, spawn_key=(i,))``,
so cohorts are reproducible byte for byte and independent of ``n_jobs``.

Anatomy (brain frame, mm). The brain is a smooth, slightly irregular ovoid (wider posteriorly,
flatter at the base) at about 0.55 of adult size, so that a whole head fits a ~10 cm field of view;
lesions, veins, rims, cortex and voxels keep their real sizes in mm. Every structure is an implicit
surface with an approximate signed distance, and tissue fractions are soft steps of it, so partial
volume is built in and one subject can be sampled on any grid:

- a 2.2 mm cortical grey-matter ribbon with sulci (the zero sheets of a smooth random field sampled
  near the surface), an interhemispheric fissure above the corpus callosum, subarachnoid CSF;
- white matter;
- deep grey nuclei, paired: caudate, putamen, globus pallidus, thalamus, red nucleus, substantia
  nigra. Their iron makes them paramagnetic (pallidus about +110 ppb rising with age, putamen and
  caudate +35..+80, nigra and red nucleus +110..+130);
- lateral ventricles (frontal horns, bodies, atria; larger with age) and a third ventricle;
- veins, deoxyhaemoglobin-rich tubes of +250..+450 ppb partial-volumed to +50..+200 on QSM, the
  classic rim mimic: medullary veins running from the ventricles to the cortex, cortical veins along
  the surface, internal cerebral and thalamostriate veins.

Lesions. 10-40 per subject (``lesions_per_subject``; a few fewer when the white matter has no room
left), in white matter with a periventricular bias, never touching each other. Each is an ellipsoid (long axis roughly radial from the ventricles, as
Dawson's fingers follow medullary veins) with a boundary perturbed by a random field, sometimes
with side lobes; equivalent radius log-normal, about 2-9 mm. FLAIR shows them 1.35-1.9 times
brighter than white matter. The lesion mask is what a rater would draw on FLAIR: the blurred lesion
thresholded at a per-lesion level, as instance labels 1..K on the QSM grid (every label one
26-connected component, so the mask also reads correctly as a binary mask).

Rim status. A subject-level rate (gamma-distributed around ``rim_prevalence``, so about half the
subjects have no rim+ lesion) sets the binomial number of rim+ lesions; rim+ lesions are somewhat
larger on average, as in real cohorts. On QSM:

- rim+: a thin (Gaussian sigma 0.6-0.9 mm, 1-2 voxels) shell of positive susceptibility centred at
  the lesion edge or up to 0.9 mm outside it (so partly outside the FLAIR mask), covering only part
  of the edge (an arc or cap) with patchy intensity; its contrast against the surrounding white
  matter after blurring is drawn from ``rim_amplitude_ppb``; the core is iso-intense (+-6 ppb);
- rim-, one of: iso-intense; homogeneously hyperintense (+8..+25 ppb, demyelination); hypointense
  (-5..-15 ppb); a vein grazing the edge, straight or bent around it (``vein_edge``); an
  off-centre paramagnetic spot (``spot``); a faint ring of +4..+9 ppb (``faint_ring``).
  Any lesion may have a central vein (the central vein sign).

Acquisition. Three sites (``n_sites``), subject ``i`` at site ``i % n_sites``:

- A: axial RAS+ QSM at 1 x 1 x 1.5 mm, FLAIR on the same grid;
- B: QSM at 0.9 x 0.9 x 2 mm stored LPS (x and y flipped), FLAIR acquired sagittally at
  1 x 1 x 1.2 mm on its own grid (permuted axes), world-aligned with the QSM;
- C: oblique axial QSM (tilted 14 degrees along the AC-PC line, rotated 5 degrees) at
  1.1 x 1.1 x 1.6 mm, FLAIR on the same grid.

The head sits at a random position and small rotation in the scanner; the field of view is
centred near it, so affines have non-trivial origins. Each image is blurred (Gaussian partial-volume
point spread, 0.55-0.65 mm); QSM gets spatially correlated Gaussian noise, a smooth +-3 ppb
background-field residual and the site's scale (0.85-1.1, dipole-inversion regularisation) and
reference offset (-5..+8 ppb), and is zero outside the brain mask; FLAIR gets a smooth bias field,
a periventricular hyperintense lining, skull and scalp, the site's gain (x0.65..x2.4, scanner
units) and Rician noise.

``acquisition="varied"`` replaces the three sites by protocols drawn per site from the seed
(:mod:`rimclf.phantom._acquisition`): oblique slabs, voxel axes permuted and flipped on disk,
0.5-1.2 mm in-plane voxels and slices up to 3 mm (rendered on sub-slices and averaged: partial
volume), noise levels and textures, dipole streaking, background-field residuals, reference
offsets and scales; ``participants.tsv`` records each scan's protocol.

``difficulty`` ("easy", "default", "hard") sets the rim contrast (30-55, 16-40, 10-28 ppb), the
rim completeness (60-100 %, 30-100 %, 25-100 % of the edge), the QSM noise (3.5, 6, 9 ppb), the FLAIR
noise and how often rim- lesions mimic a rim. At "default" a rim is
visible to the eye in most rim+ lesions, but partial rims, noise, veins and spots keep the task
short of perfect.

Besides the files that :func:`rimclf.load_cohort` reads, ``derivatives/phantom/phantom_lesions.tsv``
holds the generator's ground truth per lesion (pattern, central vein, radius, rim contrast and
completeness) and ``derivatives/phantom/phantom.json`` the parameters, seed, site settings and
versions. ``n_sessions`` > 1 writes a session layout (each session an independent draw), for tests.
"""

from rimclf.phantom._cohort import PIPELINE_FOLDER, make_phantom_cohort, read_provenance

__all__ = ["PIPELINE_FOLDER", "make_phantom_cohort", "read_provenance"]
