"""A flow that computes statistics per genre: a foreach over the genres and a join."""

import csv
import io
import statistics

from mflow import FlowSpec, IncludeFile, step


class MovieStatsFlow(FlowSpec):
    """Median, quartiles and count of box-office gross for every genre, one task per genre.

    Run it:  mflow run moviestats.py
    """

    movie_data = IncludeFile("movie_data", help="The CSV of movies.", default="movies.csv")

    @step
    def start(self):
        """Read the movies and find every genre; fan out, one task per genre."""
        rows = list(csv.DictReader(io.StringIO(self.movie_data)))
        self.movies = [(row["movie_title"], row["genres"].split("|"), int(row["gross"])) for row in rows]
        self.genres = sorted({genre for _, genres, _ in self.movies for genre in genres})
        print("%d movies in %d genres." % (len(self.movies), len(self.genres)))
        self.next(self.compute_statistics, foreach="genres")

    @step
    def compute_statistics(self):
        """The statistics of one genre (self.input)."""
        self.genre = self.input
        gross = sorted(g for _, genres, g in self.movies if self.genre in genres)
        quartiles = statistics.quantiles(gross, n=4) if len(gross) > 1 else [gross[0]] * 3
        self.stats = {"count": len(gross), "q1": quartiles[0], "median": quartiles[1], "q3": quartiles[2]}
        print("%s: %d movies, median gross %d" % (self.genre, len(gross), self.stats["median"]))
        self.next(self.join)

    @step
    def join(self, inputs):
        """Gather every genre's statistics into one dict."""
        self.genre_stats = {inp.genre: inp.stats for inp in inputs}
        self.next(self.end)

    @step
    def end(self):
        """Show the genres by median gross."""
        for genre, stats in sorted(self.genre_stats.items(), key=lambda item: -item[1]["median"]):
            print("%-12s %3d movies, median %12d" % (genre, stats["count"], stats["median"]))


if __name__ == "__main__":
    MovieStatsFlow()
