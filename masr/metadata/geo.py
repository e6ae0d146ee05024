"""The ``geo`` metadata encoder: locations ``"lat lon"`` -> points on the unit sphere.

See ``masr.metadata.encoders`` for the interface and the registry.

The encoder
-----------
``geo`` (value: ``"lat lon"`` in degrees)
    e = the point on the unit sphere (cos lat cos lon, cos lat sin lon, sin lat), so that the
    cosine distance 1 - cos(central angle) is a monotone function of the great-circle
    distance. label = index of the ``cell_degrees`` x ``cell_degrees`` latitude/longitude
    cell holding the point (the cell is named ``"<row>,<col>"``, indices of its lower-left
    corner in cells), in a vocabulary grown as cells appear.
"""

import math

import torch

from masr.metadata.encoders import MetadataEncoder, register

def parse_lat_lon(value, where=""):
    """``"lat lon"`` (degrees) -> (lat, lon) floats, refusing anything else.

    Example
    -------
    >>> parse_lat_lon("45.8150 15.9819")
    (45.815, 15.9819)
    >>> parse_lat_lon("45.8 east")
    Traceback (most recent call last):
        ...
    ValueError: malformed location '45.8 east': expected "lat lon" in degrees, e.g. "45.81 15.98"
    """
    parts = value.split()
    try:
        if len(parts) != 2:
            raise ValueError
        lat, lon = float(parts[0]), float(parts[1])
    except ValueError:
        raise ValueError(f'{where}malformed location {value!r}: expected "lat lon" in degrees, e.g. "45.81 15.98"') from None
    if not (math.isfinite(lat) and math.isfinite(lon)) or abs(lat) > 90 or abs(lon) > 180:
        raise ValueError(f"{where}location {value!r} out of range (latitude -90..90, longitude -180..180)")
    return lat, lon


@register("geo")
class GeoEncoder(MetadataEncoder):
    """Locations ``"lat lon"`` -> unit vectors on the sphere; label = grid cell id.

    Arguments
    ---------
    cell_degrees : float
        Side of the latitude/longitude grid cells that define the labels.
    source : str, optional
        The data file the values come from, named in error messages.

    Example
    -------
    >>> enc = GeoEncoder(cell_degrees=5.0)
    >>> e = enc.encode(["0 0", "0 90", "90 0"])
    >>> e.round(decimals=6).abs().tolist()
    [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    >>> enc.labels(["44.1 17.9", "44.9 15.1", "45.1 15.1"]).tolist(), enc.vocabulary
    ([0, 0, 1], ['8,3', '9,3'])
    """

    dim = 3

    def __init__(self, cell_degrees=5.0, source=None):
        super().__init__(source)
        cell_degrees = float(cell_degrees)
        if not (math.isfinite(cell_degrees) and 0 < cell_degrees <= 180):
            raise ValueError(f"{self._where()}cell_degrees must be in (0, 180], got {cell_degrees}")
        self.cell_degrees = cell_degrees

    def config(self):
        return {"cell_degrees": self.cell_degrees}

    def label_key(self, value):
        lat, lon = parse_lat_lon(value, self._where())
        row = min(math.floor(lat / self.cell_degrees), math.ceil(90 / self.cell_degrees) - 1)  # 90 N: top row
        lon = lon - 360 if lon >= 180 else lon  # 180 E is 180 W
        col = math.floor(lon / self.cell_degrees)
        return f"{row},{col}"

    def encode(self, values):
        points = [parse_lat_lon(v, self._where()) for v in self._check_values(values)]
        if not points:
            return torch.zeros(0, 3)
        lat, lon = torch.deg2rad(torch.tensor(points, dtype=torch.float64)).unbind(dim=1)
        xyz = torch.stack([lat.cos() * lon.cos(), lat.cos() * lon.sin(), lat.sin()], dim=1)
        return xyz.float()
