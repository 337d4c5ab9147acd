"""Naive references for AnnotatedData's geometry, written as the SSD fork's loops
read (sampler.cpp, bbox_util.cpp), in float64, never calling caffe_lite."""


def area(b):
    if b[2] < b[0] or b[3] < b[1]:
        return 0.0
    return (b[2] - b[0]) * (b[3] - b[1])


def inter(a, b):
    if b[0] > a[2] or b[2] < a[0] or b[1] > a[3] or b[3] < a[1]:
        return [0.0, 0.0, 0.0, 0.0]
    return [max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])]


def iou(a, b):
    i = inter(a, b)
    w, h = i[2] - i[0], i[3] - i[1]
    if w <= 0 or h <= 0:
        return 0.0
    return w * h / (area(a) + area(b) - w * h)


def cover(a, b):
    s = area(inter(a, b))
    return s / area(a) if s > 0 else 0.0


def ref_satisfies(sample, objects, limits):
    """The fork's SatisfySampleConstraint loop, literally: ``limits`` maps
    'min_jaccard_overlap' etc. to the values given."""
    kinds = [("jaccard_overlap", lambda o: iou(sample, o)),
             ("sample_coverage", lambda o: cover(sample, o)),
             ("object_coverage", lambda o: cover(o, sample))]
    present = [k for k, _ in kinds if f"min_{k}" in limits or f"max_{k}" in limits]
    if not present:
        return True
    found = False
    for obj in objects:
        skip = False
        for kind, measure in kinds:
            if kind not in present:
                continue
            value = measure(obj)
            if f"min_{kind}" in limits and value < limits[f"min_{kind}"]:
                skip = True
                break
            if f"max_{kind}" in limits and value > limits[f"max_{kind}"]:
                skip = True
                break
            found = True
        if skip:
            continue
        if found:
            return True
    return found
