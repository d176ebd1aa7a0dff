"""A flow that builds a playlist of movies: Parameters, an IncludeFile and a static branch."""

import csv
import io

from mflow import FlowSpec, IncludeFile, Parameter, step


class PlayListFlow(FlowSpec):
    """Build a playlist of movies of one genre, plus one bonus movie of another.

    Check it:  mflow check playlist.py
    Run it:    mflow run playlist.py --genre comedy --count 3
    """

    movie_data = IncludeFile("movie_data", help="The CSV of movies to choose from.", default="movies.csv")
    genre = Parameter("genre", help="The genre of the playlist.", default="sci-fi")
    count = Parameter("count", help="How many movies the playlist holds.", default=5)
    recent = Parameter("recent", help="Only movies from 2000 on.", type=bool, default=False)

    @step
    def start(self):
        """Parse the CSV into columns, then look for playlist and bonus in parallel."""
        rows = list(csv.DictReader(io.StringIO(self.movie_data)))
        self.titles = [row["movie_title"] for row in rows]
        self.years = [int(row["title_year"]) for row in rows]
        self.genres = [row["genres"].lower().split("|") for row in rows]
        print("Read %d movies." % len(self.titles))
        self.next(self.bonus_movie, self.genre_movies)

    @step
    def bonus_movie(self):
        """Pick a movie of another genre, the one with the longest title."""
        others = [t for t, g in zip(self.titles, self.genres) if self.genre.lower() not in g]
        self.bonus = max(others, key=len) if others else None
        self.next(self.join)

    @step
    def genre_movies(self):
        """The movies of the chosen genre, newest first."""
        matches = [
            (year, title)
            for title, year, genres in zip(self.titles, self.years, self.genres)
            if self.genre.lower() in genres and (not self.recent or year >= 2000)
        ]
        self.movies = [title for _, title in sorted(matches, reverse=True)]
        self.next(self.join)

    @step
    def join(self, inputs):
        """Take the playlist from one branch and the bonus from the other."""
        self.playlist = inputs.genre_movies.movies[: self.count]
        self.bonus = inputs.bonus_movie.bonus
        self.next(self.end)

    @step
    def end(self):
        """Print the playlist."""
        print("Playlist for movies in genre %r:" % self.genre)
        for number, title in enumerate(self.playlist, 1):
            print("  %d. %s" % (number, title))
        print("Bonus: %s" % self.bonus)


if __name__ == "__main__":
    PlayListFlow()
