"""A flow that reads another flow's results: the genre statistics that MovieStatsFlow's
latest successful run computed pick the movies of a playlist."""

import csv
import io

from mflow import Flow, FlowSpec, IncludeFile, Parameter, step


class PlayListReduxFlow(FlowSpec):
    """A playlist of the movies of one genre that grossed more than the genre's median,
    with the medians taken from MovieStatsFlow instead of computed again.

    Run MovieStatsFlow first, then this one (the same store, the same user):
      mflow run moviestats.py
      mflow run playlistredux.py --genre Comedy
    """

    movie_data = IncludeFile("movie_data", help="The CSV of movies to choose from.", default="movies.csv")
    genre = Parameter(
        "genre", help="The genre of the playlist (default: the one with the highest median gross).", default=""
    )
    count = Parameter("count", help="How many movies the playlist holds at most.", default=5)

    @step
    def start(self):
        """Read the genre statistics of MovieStatsFlow's latest successful run in this
        namespace (the runs of the user running this flow)."""
        run = Flow("MovieStatsFlow").latest_successful_run
        if run is None:
            raise RuntimeError("MovieStatsFlow has no successful run yet: run `mflow run moviestats.py` first")
        print("Using the statistics of run %s." % run.pathspec)
        self.stats_run = run.pathspec
        self.genre_stats = run.data.genre_stats
        self.next(self.pick_movies)

    @step
    def pick_movies(self):
        """Keep the movies of the genre that grossed above its median, highest first."""
        stats = self.genre_stats
        self.chosen_genre = self.genre or max(stats, key=lambda genre: stats[genre]["median"])
        if self.chosen_genre not in stats:
            raise ValueError("no genre %r; MovieStatsFlow knows %s" % (self.chosen_genre, ", ".join(sorted(stats))))
        median = stats[self.chosen_genre]["median"]
        rows = csv.DictReader(io.StringIO(self.movie_data))
        above = [
            (int(row["gross"]), row["movie_title"])
            for row in rows
            if self.chosen_genre in row["genres"].split("|") and int(row["gross"]) > median
        ]
        self.playlist = [title for _, title in sorted(above, reverse=True)[: self.count]]
        self.next(self.end)

    @step
    def end(self):
        """Print the playlist."""
        print("%s movies above the median gross (from %s):" % (self.chosen_genre, self.stats_run))
        for number, title in enumerate(self.playlist, 1):
            print("  %d. %s" % (number, title))


if __name__ == "__main__":
    PlayListReduxFlow()
